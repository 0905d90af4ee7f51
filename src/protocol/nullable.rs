//! Three states for one optional field: absent, `null` and a value, as
//! `Option<Option<T>>` (`None`, `Some(None)`, `Some(Some(v))`). Serde maps
//! both absent and `null` to `None` by itself; a field that must tell them
//! apart takes `#[serde(default, deserialize_with = "nullable")]` (and
//! `skip_serializing_if = "Option::is_none"`, which writes `Some(None)` as
//! `null`). Used by `config.update` (an explicit `null` clears a field on
//! the agent) and by the REST API's patches.

use serde::{Deserialize, Deserializer};

/// Deserializes a present field (a value or `null`) as `Some(..)`; with
/// `#[serde(default)]` an absent field stays `None`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// What a three-state field does to the value it patches: `None` leaves
/// it, `Some(None)` clears it, `Some(Some(v))` sets it (an empty string
/// leaves it, as protocol 1 said of empty fields).
pub fn apply_patch<T>(
    slot: &mut Option<T>,
    patch: Option<&Option<String>>,
    wrap: impl Fn(String) -> T,
) {
    match patch {
        None => {}
        Some(None) => *slot = None,
        Some(Some(value)) if value.is_empty() => {}
        Some(Some(value)) => *slot = Some(wrap(value.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Patch {
        #[serde(
            default,
            deserialize_with = "nullable",
            skip_serializing_if = "Option::is_none"
        )]
        name: Option<Option<String>>,
    }

    /// Absent, `null` and a value decode to three different states, and
    /// encode back to the same JSON.
    #[test]
    fn absent_null_and_value_are_three_states() {
        for (text, state) in [
            ("{}", None),
            (r#"{"name":null}"#, Some(None)),
            (r#"{"name":"web"}"#, Some(Some("web".to_owned()))),
        ] {
            let patch: Patch = serde_json::from_str(text).unwrap();
            assert_eq!(patch.name, state, "{text}");
            assert_eq!(serde_json::to_string(&patch).unwrap(), text);
        }
    }

    /// A value of the wrong type is an error naming the field, not a clear.
    #[test]
    fn wrong_type_is_an_error() {
        let err = serde_json::from_str::<Patch>(r#"{"name":5}"#).unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
    }

    /// Absent leaves, `null` clears, a value sets, an empty string leaves.
    #[test]
    fn patch_applies_each_state() {
        let mut slot = Some("old".to_owned());
        apply_patch(&mut slot, None, std::convert::identity);
        assert_eq!(slot.as_deref(), Some("old"));
        apply_patch(
            &mut slot,
            Some(&Some(String::new())),
            std::convert::identity,
        );
        assert_eq!(slot.as_deref(), Some("old"));
        apply_patch(
            &mut slot,
            Some(&Some("new".to_owned())),
            std::convert::identity,
        );
        assert_eq!(slot.as_deref(), Some("new"));
        apply_patch(&mut slot, Some(&None), std::convert::identity);
        assert_eq!(slot, None);
    }
}
