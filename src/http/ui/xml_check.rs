//! Test helper: a small XML well-formedness check for the SVG the UI
//! draws (one root element, balanced tags, quoted attributes, no stray
//! `<` or `&`). Not a parser: it only says whether a document is sound.

/// Panics with the offending position unless `doc` is a well-formed XML
/// fragment with exactly one root element.
pub fn assert_well_formed(doc: &str) {
    if let Err((at, why)) = check(doc) {
        let start = at.saturating_sub(40);
        let end = (at + 40).min(doc.len());
        panic!(
            "not well-formed at byte {at}: {why}\n…{}…",
            doc.get(start..end).unwrap_or("")
        );
    }
}

fn check_entities(text: &str, base: usize) -> Result<(), (usize, String)> {
    let mut rest = text;
    let mut offset = base;
    while let Some(i) = rest.find('&') {
        let after = &rest[i + 1..];
        let end = after
            .find(';')
            .ok_or((offset + i, "& without ;".to_owned()))?;
        let name = &after[..end];
        let ok = matches!(name, "amp" | "lt" | "gt" | "quot" | "apos")
            || (name.starts_with("#x") && name[2..].chars().all(|c| c.is_ascii_hexdigit()))
            || (name.starts_with('#') && name[1..].chars().all(|c| c.is_ascii_digit()));
        if !ok || name.len() < 2 {
            return Err((offset + i, format!("unknown entity &{name};")));
        }
        offset += i + 1 + end + 1;
        rest = &after[end + 1..];
    }
    Ok(())
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.')
}

fn check(doc: &str) -> Result<(), (usize, String)> {
    let bytes = doc.as_bytes();
    let mut stack: Vec<&str> = Vec::new();
    let mut roots = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'<' {
            let next = doc[i..].find('<').map_or(doc.len(), |n| i + n);
            let text = &doc[i..next];
            if stack.is_empty() && !text.trim().is_empty() {
                return Err((i, "text outside the root element".to_owned()));
            }
            if text.contains('>') {
                return Err((i, "stray > in text".to_owned()));
            }
            check_entities(text, i)?;
            i = next;
            continue;
        }
        if doc[i..].starts_with("<!--") {
            let end = doc[i..]
                .find("-->")
                .ok_or((i, "unclosed comment".to_owned()))?;
            i += end + 3;
            continue;
        }
        if let Some(rest) = doc[i..].strip_prefix("</") {
            let end = rest.find('>').ok_or((i, "unclosed end tag".to_owned()))?;
            let name = rest[..end].trim_end();
            match stack.pop() {
                Some(open) if open == name => {}
                other => return Err((i, format!("</{name}> closes {other:?}"))),
            }
            i += 2 + end + 1;
            continue;
        }
        // A start tag.
        let start = i + 1;
        let name_len = doc[start..]
            .find(|c: char| !is_name_char(c))
            .ok_or((i, "unterminated tag".to_owned()))?;
        if name_len == 0 {
            return Err((i, "stray <".to_owned()));
        }
        let name = &doc[start..start + name_len];
        let mut j = start + name_len;
        loop {
            while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            match bytes.get(j) {
                None => return Err((i, "unterminated tag".to_owned())),
                Some(b'>') => {
                    if stack.is_empty() {
                        roots += 1;
                    }
                    stack.push(name);
                    j += 1;
                    break;
                }
                Some(b'/') if bytes.get(j + 1) == Some(&b'>') => {
                    if stack.is_empty() {
                        roots += 1;
                    }
                    j += 2;
                    break;
                }
                Some(_) => {
                    let attr_len = doc[j..]
                        .find(|c: char| !is_name_char(c))
                        .ok_or((j, "unterminated attribute".to_owned()))?;
                    if attr_len == 0 {
                        return Err((j, "bad attribute name".to_owned()));
                    }
                    j += attr_len;
                    if !doc[j..].starts_with("=\"") {
                        return Err((j, "attribute without =\"value\"".to_owned()));
                    }
                    j += 2;
                    let value_len = doc[j..]
                        .find('"')
                        .ok_or((j, "unclosed attribute value".to_owned()))?;
                    let value = &doc[j..j + value_len];
                    if value.contains('<') {
                        return Err((j, "< in attribute value".to_owned()));
                    }
                    check_entities(value, j)?;
                    j += value_len + 1;
                }
            }
        }
        i = j;
    }
    if let Some(open) = stack.last() {
        return Err((doc.len(), format!("<{open}> is never closed")));
    }
    if roots != 1 {
        return Err((0, format!("{roots} root elements")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checker accepts sound documents and rejects broken ones.
    #[test]
    fn detects_broken_documents() {
        assert!(check(r#"<svg a="1"><g><rect x="1"/><text>a &amp; b</text></g></svg>"#).is_ok());
        for bad in [
            "<svg><g></svg>",
            "<svg>a & b</svg>",
            r#"<svg a=1></svg>"#,
            "<svg></svg><svg></svg>",
            "<svg>",
            r#"<svg a="<"></svg>"#,
            "text<svg></svg>",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
