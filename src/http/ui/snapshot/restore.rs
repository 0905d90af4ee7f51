//! The operator's part of the snapshot page: the selection (filled by
//! `browse.js` from the checkboxes and kept per snapshot in session
//! storage) and the Restore dialog, whose form `browse.js` sends as a
//! `restore` job to `POST /api/v1/hosts/{target}/jobs` with
//! `source_host_id` set to this host, then opens the job's page.

use maud::{html, Markup};

use super::{Data, RESTORE_TARGETS};
use crate::protocol::RestoreOverwrite;

/// The overwrite modes with what each does (restic's `--overwrite`).
const OVERWRITE: [(RestoreOverwrite, &str); 4] = [
    (RestoreOverwrite::Always, "always (replace existing files)"),
    (
        RestoreOverwrite::IfChanged,
        "if-changed (replace files whose content differs; restic 0.17+)",
    ),
    (
        RestoreOverwrite::IfNewer,
        "if-newer (replace older files; restic 0.17+)",
    ),
    (
        RestoreOverwrite::Never,
        "never (keep existing files; restic 0.17+)",
    ),
];

/// A default target folder: a fresh folder named after the snapshot.
fn default_target(short_id: &str) -> String {
    format!("/tmp/restore-{short_id}")
}

pub(super) fn panel(data: &Data) -> Markup {
    let host = &data.host;
    let more_targets = data.target_total > RESTORE_TARGETS;
    html! {
        section #selection-panel {
            h2 { "Selection" }
            p #selection-summary {
                span #selection-count { "0" } " selected"
                " · "
                button #selection-clear type="button" { "Clear" }
                " "
                button #restore-open type="button" data-change disabled { "Restore…" }
            }
            p.muted { "The selection is kept while you move between folders and pages of this snapshot." }
            ul #selection-list {}
        }
        dialog #restore-dialog aria-labelledby="restore-title" {
            form #restore-form method="dialog" data-change
                data-source-host=(host.id) data-snapshot-id=(data.snapshot.snapshot_id) {
                h2 #restore-title { "Restore" }
                p { "Restores " strong #restore-what { "the selection" } " of snapshot "
                    code { (data.snapshot.short_id) } ". Paths keep their place under the target folder." }
                label for="restore-host" { "Target host" }
                select #restore-host name="target_host" {
                    @for t in &data.targets {
                        option value=(t.id) selected[t.id == host.id] {
                            (t.display_name.as_deref().unwrap_or(&t.hostname))
                            @if t.display_name.is_some() { " (" (t.hostname) ")" }
                            @if !t.online { " — offline, queued until it connects" }
                        }
                    }
                }
                @if more_targets {
                    label for="restore-host-id" { "Or another host's id (the list shows the first " (RESTORE_TARGETS) " of " (data.target_total) ")" }
                    input #restore-host-id name="target_host_id" type="text" autocomplete="off";
                }
                label for="restore-target" { "Target folder (absolute; / restores in place)" }
                input #restore-target name="target" type="text" required value=(default_target(&data.snapshot.short_id));
                label for="restore-overwrite" { "Existing files" }
                select #restore-overwrite name="overwrite" {
                    @for (mode, text) in OVERWRITE {
                        option value=(mode.as_str()) selected[mode == RestoreOverwrite::Always] { (text) }
                    }
                }
                label.inline {
                    input #restore-verify name="verify" type="checkbox";
                    " Verify: read every restored file back"
                }
                p.error #restore-error hidden {}
                div.actions {
                    button #restore-submit type="submit" value="restore" { "Start restore" }
                    button #restore-cancel type="button" { "Cancel" }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every overwrite mode is offered, "always" being restic's default.
    #[test]
    fn overwrite_modes() {
        let names: Vec<&str> = OVERWRITE.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(names, ["always", "if-changed", "if-newer", "never"]);
        assert_eq!(default_target("ab12cd34"), "/tmp/restore-ab12cd34");
    }
}
