//! Test helper: an XML well-formedness check for the SVG the UI draws,
//! by parsing it with `roxmltree` (one root element, balanced tags, quoted
//! attributes, known entities). A parse error names its line and column.

/// Panics with the parser's error and the surrounding text unless `doc`
/// is a well-formed XML document with exactly one root element.
pub fn assert_well_formed(doc: &str) {
    if let Err(e) = roxmltree::Document::parse(doc) {
        let at = e.pos();
        let line = doc
            .lines()
            .nth((at.row as usize).saturating_sub(1))
            .unwrap_or("");
        panic!("not well-formed: {e}\n…{line}…");
    }
}

#[cfg(test)]
mod tests {
    /// The check accepts sound documents and rejects broken ones.
    #[test]
    fn detects_broken_documents() {
        let ok = |doc: &str| roxmltree::Document::parse(doc).is_ok();
        assert!(ok(
            r#"<svg a="1"><g><rect x="1"/><text>a &amp; b</text></g></svg>"#
        ));
        for bad in [
            "<svg><g></svg>",
            "<svg>a & b</svg>",
            r#"<svg a=1></svg>"#,
            "<svg></svg><svg></svg>",
            "<svg>",
            r#"<svg a="<"></svg>"#,
            "text<svg></svg>",
        ] {
            assert!(!ok(bad), "{bad}");
        }
    }
}
