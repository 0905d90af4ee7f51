//! The `options` object of a source group or policy as a request gives it
//! (issue 12 §5): read key by key so that an unknown key or a value of
//! the wrong type is a 400 naming `options.<key>`, then checked as restic
//! would ([`RunOptions::validate`]). Its schema is `RunOptions`.

use serde_json::Value;

use crate::http::error::ApiError;
use crate::protocol::{Compression, RunOptions, OPTION_KEYS};

/// Longest key shown back in an error.
const MAX_SHOWN_KEY: usize = 64;

/// The options object as the API documents it (the body is read by
/// [`parse`], not by serde, to name the key at fault).
#[derive(Debug, utoipa::ToSchema)]
#[schema(as = RunOptions)]
#[allow(dead_code)] // a schema only: the fields document the keys
pub(super) struct OptionsBody {
    /// Upload limit in KiB/s (`--limit-upload`), 1 to 2^30.
    #[schema(minimum = 1)]
    limit_upload_kib: Option<u64>,
    /// Download limit in KiB/s (`--limit-download`), 1 to 2^30.
    #[schema(minimum = 1)]
    limit_download_kib: Option<u64>,
    /// `--one-file-system`.
    one_file_system: Option<bool>,
    /// `--exclude-caches` (skip folders holding a CACHEDIR.TAG).
    exclude_caches: Option<bool>,
    /// `--exclude-larger-than`, a restic size such as `500M`.
    exclude_larger_than: Option<String>,
    /// `auto`, `max` or `off` (`--compression`; restic 0.14+, repository
    /// format version 2).
    compression: Option<String>,
    /// Windows VSS (`--use-fs-snapshot`); refused by other agents.
    use_fs_snapshot: Option<bool>,
}

/// The options of a request; `None` when absent, null or empty. `field`
/// is where they sit (`options`, `source_groups[0].options`).
pub(super) fn parse(field: &str, value: Option<Value>) -> Result<Option<RunOptions>, ApiError> {
    let map = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(ApiError::validation(format!(
                "{field}: must be a JSON object with keys among {}",
                OPTION_KEYS.join(", ")
            )))
        }
    };
    let mut options = RunOptions::default();
    for (key, value) in map {
        let at =
            |what: &str| ApiError::validation(format!("{field}.{key}: {what}", key = clip(&key)));
        if value.is_null() {
            continue; // null: unset, like an absent key
        }
        match key.as_str() {
            "limit_upload_kib" | "limit_download_kib" => {
                let kib = value
                    .as_u64()
                    .ok_or_else(|| at("must be a positive whole number of KiB/s"))?;
                if key == "limit_upload_kib" {
                    options.limit_upload_kib = Some(kib);
                } else {
                    options.limit_download_kib = Some(kib);
                }
            }
            "one_file_system" | "exclude_caches" | "use_fs_snapshot" => {
                let on = value.as_bool().ok_or_else(|| at("must be true or false"))?;
                match key.as_str() {
                    "one_file_system" => options.one_file_system = Some(on),
                    "exclude_caches" => options.exclude_caches = Some(on),
                    _ => options.use_fs_snapshot = Some(on),
                }
            }
            "exclude_larger_than" => {
                let size = value
                    .as_str()
                    .ok_or_else(|| at("must be a restic size such as \"500M\""))?;
                options.exclude_larger_than = Some(size.to_owned());
            }
            "compression" => {
                let mode = value
                    .as_str()
                    .and_then(Compression::parse)
                    .ok_or_else(|| at("must be \"auto\", \"max\" or \"off\""))?;
                options.compression = Some(mode);
            }
            _ => {
                return Err(at(&format!(
                    "unknown option; allowed: {}",
                    OPTION_KEYS.join(", ")
                )))
            }
        }
    }
    options.validate().map_err(|e| {
        // `RunOptions` names `options.<key>`; say where the object sits.
        ApiError::validation(format!("{field}.{}: {}", e.key, e.reason))
    })?;
    Ok((!options.is_empty()).then_some(options))
}

/// The options that only make sense for paths, refused on a dump group
/// (a stream has no file system, caches or file sizes).
pub(super) fn check_for_dump(field: &str, options: &RunOptions) -> Result<(), ApiError> {
    let path_only = [
        ("one_file_system", options.one_file_system.is_some()),
        ("exclude_caches", options.exclude_caches.is_some()),
        ("exclude_larger_than", options.exclude_larger_than.is_some()),
        ("use_fs_snapshot", options.use_fs_snapshot.is_some()),
    ];
    match path_only.iter().find(|(_, set)| *set) {
        Some((key, _)) => Err(ApiError::validation(format!(
            "{field}.{key}: a dump group backs up a stream, not paths; this option does not apply"
        ))),
        None => Ok(()),
    }
}

fn clip(key: &str) -> String {
    key.chars().take(MAX_SHOWN_KEY).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parsed(value: Value) -> Result<Option<RunOptions>, ApiError> {
        parse("options", Some(value))
    }

    /// Every key is read into its field; empty, null or absent is none.
    #[test]
    fn reads_every_key() {
        let options = parsed(json!({
            "limit_upload_kib": 100, "limit_download_kib": 200,
            "one_file_system": true, "exclude_caches": false,
            "exclude_larger_than": "500M", "compression": "max",
            "use_fs_snapshot": true
        }))
        .unwrap()
        .unwrap();
        assert_eq!(options.limit_upload_kib, Some(100));
        assert_eq!(options.limit_download_kib, Some(200));
        assert_eq!(options.one_file_system, Some(true));
        assert_eq!(options.exclude_caches, Some(false));
        assert_eq!(options.exclude_larger_than.as_deref(), Some("500M"));
        assert_eq!(options.compression, Some(Compression::Max));
        assert_eq!(options.use_fs_snapshot, Some(true));
        assert_eq!(parsed(json!({})).unwrap(), None);
        assert_eq!(parsed(json!({"compression": null})).unwrap(), None);
        assert_eq!(parse("options", None).unwrap(), None);
        assert_eq!(parse("options", Some(Value::Null)).unwrap(), None);
    }

    /// Each bad key or value is a 400 whose message starts with the key.
    #[test]
    fn bad_options_name_the_key() {
        let cases = [
            (json!({"verbose": true}), "options.verbose: unknown option"),
            (json!({"limit_upload_kib": 0}), "options.limit_upload_kib:"),
            (json!({"limit_upload_kib": -1}), "options.limit_upload_kib:"),
            (
                json!({"limit_upload_kib": "1M"}),
                "options.limit_upload_kib:",
            ),
            (
                json!({"limit_download_kib": 1.5}),
                "options.limit_download_kib:",
            ),
            (
                json!({"one_file_system": "yes"}),
                "options.one_file_system:",
            ),
            (json!({"exclude_caches": 1}), "options.exclude_caches:"),
            (
                json!({"exclude_larger_than": "big"}),
                "options.exclude_larger_than:",
            ),
            (
                json!({"exclude_larger_than": 500}),
                "options.exclude_larger_than:",
            ),
            (json!({"compression": "fastest"}), "options.compression:"),
            (json!({"use_fs_snapshot": "on"}), "options.use_fs_snapshot:"),
            (json!(["compression"]), "options: must be a JSON object"),
        ];
        for (body, prefix) in cases {
            let err = parsed(body.clone()).unwrap_err();
            assert_eq!(err.status, actix_web::http::StatusCode::BAD_REQUEST);
            assert!(err.message.starts_with(prefix), "{body}: {}", err.message);
        }
        let err = parse(
            "source_groups[1].options",
            Some(json!({"limit_upload_kib": 0})),
        )
        .unwrap_err();
        assert!(
            err.message
                .starts_with("source_groups[1].options.limit_upload_kib:"),
            "{}",
            err.message
        );
    }

    /// A dump group takes the limits and compression, not path options.
    #[test]
    fn dump_groups_take_stream_options_only() {
        let ok = parsed(json!({"limit_upload_kib": 10, "compression": "max"}))
            .unwrap()
            .unwrap();
        check_for_dump("options", &ok).unwrap();
        let paths = parsed(json!({"one_file_system": true})).unwrap().unwrap();
        let err = check_for_dump("options", &paths).unwrap_err();
        assert!(err.message.starts_with("options.one_file_system:"));
    }
}
