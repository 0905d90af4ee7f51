//! `jobs.params`: a job kind's own parameters, stored as JSON.
//!
//! A restore stores its [`RestoreSpec`] (without repository settings, which
//! are added when the job is sent), a drill its sample ([`DrillSpec`]), a
//! dump group's backup its [`DumpSpec`] (without the password, which is
//! opened from the group when the job is sent).
//! The JSON is the spec itself, untagged, so the API shows the same object
//! the agent receives; the job's `kind` says which one a row holds, and the
//! two shapes cannot be confused (a drill always has `files`, which a
//! restore never has, and the drill is tried first).

use serde::{Deserialize, Serialize};

use crate::protocol::{DrillSpec, DumpSpec, RestoreSpec};

/// The parameters of a `restore` or `drill` job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JobParams {
    /// A drill's sample: the files to restore and their catalogued sizes.
    Drill(DrillSpec),
    /// A dump backup's database (always has `driver`, which neither of
    /// the others has; it refuses unknown fields).
    Dump(DumpSpec),
    /// A restore's paths, target, overwrite mode, verify and source host.
    Restore(RestoreSpec),
}

impl JobParams {
    /// The restore parameters, when these are a restore's.
    pub fn restore(&self) -> Option<&RestoreSpec> {
        match self {
            JobParams::Restore(spec) => Some(spec),
            JobParams::Drill(_) | JobParams::Dump(_) => None,
        }
    }

    /// The dump, when these are a dump backup's.
    pub fn dump(&self) -> Option<&DumpSpec> {
        match self {
            JobParams::Dump(spec) => Some(spec),
            _ => None,
        }
    }

    /// The drill sample, when these are a drill's.
    pub fn drill(&self) -> Option<&DrillSpec> {
        match self {
            JobParams::Drill(spec) => Some(spec),
            JobParams::Restore(_) | JobParams::Dump(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{DrillFile, RestoreOverwrite};

    /// Each shape round-trips to itself through its stored JSON, which is
    /// the spec's own JSON (no tag).
    #[test]
    fn both_shapes_round_trip_untagged() {
        let drill = JobParams::Drill(DrillSpec {
            files: vec![DrillFile {
                path: "/data/a".to_owned(),
                size: 3,
            }],
        });
        let text = serde_json::to_string(&drill).unwrap();
        assert_eq!(text, r#"{"files":[{"path":"/data/a","size":3}]}"#);
        assert_eq!(serde_json::from_str::<JobParams>(&text).unwrap(), drill);
        assert!(drill.restore().is_none());

        let spec: RestoreSpec = serde_json::from_value(serde_json::json!({
            "paths": ["/data/a"], "target": "/restore", "overwrite": "always", "verify": true
        }))
        .unwrap();
        assert_eq!(spec.overwrite, RestoreOverwrite::Always);
        let restore = JobParams::Restore(spec.clone());
        let text = serde_json::to_string(&restore).unwrap();
        assert_eq!(text, serde_json::to_string(&spec).unwrap());
        assert_eq!(serde_json::from_str::<JobParams>(&text).unwrap(), restore);
        assert_eq!(restore.restore(), Some(&spec));
        assert!(restore.drill().is_none());

        let dump: DumpSpec =
            serde_json::from_value(serde_json::json!({"driver": "postgres", "database": "shop"}))
                .unwrap();
        let stored = JobParams::Dump(dump.clone());
        let text = serde_json::to_string(&stored).unwrap();
        assert_eq!(text, r#"{"driver":"postgres","database":"shop"}"#);
        assert_eq!(serde_json::from_str::<JobParams>(&text).unwrap(), stored);
        assert_eq!(stored.dump(), Some(&dump));
        assert!(restore.dump().is_none());
    }
}
