//! The agent's side of the connection: connect attempts and back-off,
//! `hello` and the outbox replay, heartbeats, and the server's messages
//! (`command.run`, `command.cancel`, `config.update`, `schedule.set`,
//! `catalog.list`, `health.set`), plus the frames of snapshot downloads
//! going out, heartbeats' metrics and `health.report`s.

use chrono::Utc;
use futures_util::FutureExt;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;
use tracing::Instrument;

use crate::agent::catalog;
use crate::agent::config::Secret;
use crate::agent::connection::{self, ConnectError, WsStream};
use crate::agent::download::{DownloadEvent, Outgoing};
use crate::agent::journal::{JobRecord, JobState};
use crate::agent::platform;
use crate::agent::process::StopReason;
use crate::agent::restic;
use crate::agent::restore::SourceRepos;
use crate::agent::runner::{self, CANCELLED_ERROR};
use crate::protocol::{
    Ack, AgentToServer, CatalogList, CommandCancel, CommandResult, CommandRun, ConfigUpdate,
    DecodeError, Envelope, FinishStatus, HealthReport, Heartbeat, Hello, ScheduleAck, ScheduleSet,
    ServerToAgent, CAPABILITY_DISCOVERY, PROTOCOL_VERSION,
};

use super::{
    Busy, Connecting, Daemon, Link, CAPABILITIES, HEARTBEAT_INTERVAL, UNKNOWN_RESTIC_VERSION,
    VERSION_TIMEOUT,
};

impl Daemon {
    // --- connection -------------------------------------------------------

    /// A connection attempt, run inside the loop's `select!`: probes the
    /// restic version first (so `hello` reports the installed one).
    pub(super) fn connect_attempt(&self) -> Connecting {
        let config = self.config.clone();
        let version = self.restic.version_invocation();
        async move {
            let version = match runner::capture(&version, VERSION_TIMEOUT).await {
                Ok(output) => restic::parse_version(&output.stdout),
                Err(err) => {
                    tracing::error!("cannot run `restic version`: {err}");
                    None
                }
            };
            (connection::connect(&config).await, version)
        }
        .boxed()
    }

    pub(super) fn on_connect_failed(&mut self, err: &ConnectError) {
        let delay = self.backoff.next_delay(connection::jitter_unit());
        match err {
            ConnectError::Unauthorized
            | ConnectError::InsecureRefused { .. }
            | ConnectError::BadUrl { .. }
            | ConnectError::Tls(_) => {
                tracing::error!("cannot connect to the server: {err}; retrying in {delay:?}");
            }
            _ => tracing::warn!("cannot connect to the server: {err}; retrying in {delay:?}"),
        }
        self.retry_at = Some(Instant::now() + delay);
    }

    /// Session start: hello, outbox replay, pending schedule fires.
    pub(super) async fn on_connected(&mut self, ws: WsStream) {
        tracing::info!("connected to the server");
        let mut heartbeat = tokio::time::interval(HEARTBEAT_INTERVAL);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        self.link = Some(Link {
            ws,
            since: Instant::now(),
            heartbeat,
        });
        let hello = Hello {
            protocol_version: PROTOCOL_VERSION,
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            restic_version: self
                .restic
                .version
                .as_ref()
                .map_or_else(|| UNKNOWN_RESTIC_VERSION.to_owned(), |v| v.text.clone()),
            hostname: self.config.hostname(),
            os: platform::os_name().to_owned(),
            arch: platform::arch_name().to_owned(),
            boot_time: platform::boot_time(),
            capabilities: Some(
                CAPABILITIES
                    .iter()
                    .map(|c| (*c).to_owned())
                    .chain(self.dump_capabilities.iter().cloned())
                    .chain(
                        self.discovery
                            .is_on()
                            .then(|| CAPABILITY_DISCOVERY.to_owned()),
                    )
                    .collect(),
            ),
            // Only a version whose settings are held (in memory or in the
            // sealed file): the server then leaves them out of its greeting.
            last_known_config_version: self.config_version.filter(|_| self.config_received),
        };
        self.send_live(AgentToServer::from(hello)).await;
        let outbox = match self.journal.outbox() {
            Ok(outbox) => outbox,
            Err(err) => {
                tracing::error!("cannot read the outbox: {err}");
                Vec::new()
            }
        };
        if !outbox.is_empty() {
            tracing::info!(count = outbox.len(), "replaying the outbox");
        }
        if !self.replay(outbox).await {
            return;
        }
        self.send_pending_fires().await;
        if let Some(report) = self.discovery.latest().cloned() {
            self.send_live(AgentToServer::from(report)).await;
        }
    }

    /// Ends the session after a close, error or failed send, and arms the
    /// reconnect timer.
    pub(super) fn disconnect(&mut self, why: &str) {
        let Some(link) = self.link.take() else {
            return;
        };
        // The server forgot this connection's downloads: stop their restic.
        self.downloads.cancel_all();
        let lasted = link.since.elapsed();
        self.backoff.session_ended(lasted);
        let delay = self.backoff.next_delay(connection::jitter_unit());
        tracing::warn!(
            ?lasted,
            "disconnected from the server ({why}); reconnecting in {delay:?}"
        );
        self.retry_at = Some(Instant::now() + delay);
    }

    /// Sends a message under a fresh envelope id if connected; dropped
    /// otherwise (live messages are best effort), except log lines, which
    /// are spooled on disk and sent after the next `hello`.
    pub(super) async fn send_live(&mut self, message: AgentToServer) {
        if self.link.is_none() {
            if let AgentToServer::LogStream(line) = &message {
                self.spool_line(line);
            }
            return;
        }
        let envelope = Envelope::new(message);
        if !self.send_envelope(&envelope).await {
            if let AgentToServer::LogStream(line) = &envelope.message {
                self.spool_line(line);
            }
        }
    }

    /// Sends an envelope if connected; returns whether it was written.
    pub(super) async fn send_envelope(&mut self, envelope: &Envelope<AgentToServer>) -> bool {
        let Some(link) = self.link.as_mut() else {
            return false;
        };
        match connection::send(&mut link.ws, envelope).await {
            Ok(()) => true,
            Err(err) => {
                self.disconnect(&format!("send failed: {err}"));
                false
            }
        }
    }

    pub(super) async fn send_heartbeat(&mut self) {
        let heartbeat = Heartbeat {
            sent_at: Utc::now(),
            active_job_ids: Some(self.active_job_ids()),
            metrics: platform::metrics(&self.config.state_dir, &self.source_roots()),
            config_version: self.config_version.filter(|_| self.config_received),
        };
        self.send_live(AgentToServer::from(heartbeat)).await;
    }

    /// Each source group of the applied schedules with its first include
    /// (whose file system's free space the heartbeat reports).
    fn source_roots(&self) -> Vec<(String, std::path::PathBuf)> {
        let mut roots: Vec<(String, std::path::PathBuf)> = Vec::new();
        for group in self.cron.schedules().flat_map(|s| s.source_groups.iter()) {
            if let Some(first) = group.includes.first() {
                if !roots.iter().any(|(name, _)| *name == group.name) {
                    roots.push((group.name.clone(), first.into()));
                }
            }
        }
        roots
    }

    /// Sends a `health.report`, if there is one (dropped while offline:
    /// the next `health.set` after reconnecting brings a full one).
    pub(super) async fn send_health(&mut self, report: Option<HealthReport>) {
        if let Some(report) = report {
            self.send_live(AgentToServer::from(report)).await;
        }
    }

    /// The running job and the queued ones.
    pub(super) fn active_job_ids(&self) -> Vec<String> {
        let running = match &self.busy {
            Some(Busy::Job { record, .. }) => Some(record.job_id().to_owned()),
            _ => None,
        };
        running
            .into_iter()
            .chain(self.queue.iter().map(|record| record.job_id().to_owned()))
            .collect()
    }

    pub(super) async fn on_frame(
        &mut self,
        frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) {
        match frame {
            Some(Ok(Message::Text(text))) => match Envelope::<ServerToAgent>::decode(text.as_str())
            {
                Ok(envelope) => self.on_message(envelope).await,
                // A newer server's message: ignored, the session goes on
                // (PROTOCOL.md: an unknown type never ends a connection).
                Err(DecodeError::UnknownType(kind)) => tracing::debug!(
                    message_type = %kind,
                    "ignored a message type this agent does not know (a newer server)"
                ),
                Err(err) => tracing::warn!("undecodable frame from the server: {err}"),
            },
            Some(Ok(Message::Binary(_))) => {
                tracing::warn!("binary frame from the server ignored (protocol error)");
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(Message::Close(close))) => {
                let why = close.map_or_else(
                    || "closed by the server".to_owned(),
                    |frame| format!("closed by the server: {} {}", frame.code, frame.reason),
                );
                self.disconnect(&why);
            }
            Some(Err(err)) => self.disconnect(&format!("connection error: {err}")),
            None => self.disconnect("connection ended"),
        }
    }

    pub(super) async fn on_message(&mut self, envelope: Envelope<ServerToAgent>) {
        match envelope.message {
            ServerToAgent::ConfigUpdate(update) => {
                self.on_config_update(envelope.id, &update).await
            }
            ServerToAgent::ScheduleSet(set) => self.on_schedule_set(&set).await,
            ServerToAgent::CommandRun(run) => self.on_command_run(run).await,
            ServerToAgent::CommandCancel(cancel) => self.on_command_cancel(cancel).await,
            ServerToAgent::CatalogList(request) => self.on_catalog_list(request),
            ServerToAgent::HealthSet(set) => {
                let report = self.health.apply(&set, Instant::now());
                self.send_health(report).await;
            }
            // Informational only: the agent never updates itself.
            ServerToAgent::AgentUpdateAvailable(update) => tracing::info!(
                latest_version = %update.latest_version,
                package_url = %update.package_url,
                changelog = update.changelog.as_deref().unwrap_or(""),
                "a newer agent is available (install it with the package manager)"
            ),
            ServerToAgent::Ack(ack) => {
                if !ack.accepted {
                    tracing::warn!(
                        correlation_id = %ack.correlation_id,
                        reason = ack.reason.as_deref().unwrap_or(""),
                        "the server refused a message; dropping it from the outbox"
                    );
                }
                match self.journal.acknowledge(&ack.correlation_id) {
                    // The job's spooled lines went out before it: the
                    // server has them.
                    Ok(Some(AgentToServer::JobFinished(finished))) => {
                        if let Err(err) = self.spool.remove(&finished.job_id) {
                            tracing::warn!(job_id = %finished.job_id, "cannot remove a delivered log spool: {err}");
                        }
                    }
                    Ok(_) => {}
                    Err(err) => tracing::error!("cannot record an ack: {err}"),
                }
            }
            ServerToAgent::DownloadStart(start) => {
                self.downloads.start(start, &self.restic, &self.repo);
            }
            ServerToAgent::DownloadCredit(credit) => self.downloads.credit(&credit),
            ServerToAgent::DownloadCancel(cancel) => self.downloads.cancel(&cancel.download_id),
            ServerToAgent::Error(error) => {
                tracing::warn!(
                    code = %error.code,
                    correlation_id = error.correlation_id.as_deref().unwrap_or(""),
                    "the server reported an error: {}",
                    error.detail
                );
                self.on_unknown_to_server(&error);
            }
        }
    }

    /// `catalog.list`: one folder of a snapshot, listed now by a restic
    /// of its own (read-only, no lock) beside whatever job runs; the
    /// answer goes out as `catalog.listing` frames.
    pub(super) fn on_catalog_list(&mut self, request: CatalogList) {
        while self.listings.try_join_next().is_some() {}
        let invocation = if self.listings.len() >= catalog::MAX_LIVE_LISTINGS {
            Err(format!(
                "{} live listings are running on this host; try again",
                catalog::MAX_LIVE_LISTINGS
            ))
        } else {
            self.restic
                .ls_dir(&self.repo, &request.snapshot_id, &request.path)
                .map_err(|e| e.to_string())
        };
        let tx = self.live_tx.clone();
        self.listings
            .spawn(catalog::list_dir(request, invocation, tx).in_current_span());
    }

    /// `config.update`: applied (and sealed with its version), or refused
    /// when its URL is not allowed (the settings before it stay; jobs keep
    /// using them). A versioned one is answered with `ack` either way; a
    /// server before config versions sends none and gets no `ack`.
    pub(super) async fn on_config_update(&mut self, id: String, update: &ConfigUpdate) {
        let refused = update
            .repo_url
            .as_deref()
            .filter(|url| !url.is_empty())
            .and_then(|url| self.config.repository_allowed(url).err());
        match &refused {
            Some(reason) => {
                tracing::error!(version = update.version, "config.update refused: {reason}")
            }
            None => {
                self.repo.apply(update);
                self.config_received = true;
                self.config_version = update.version;
                tracing::info!(repo = ?self.repo, version = update.version, "repository settings updated");
                if let Err(err) = self.sealed.save(&self.repo, self.config_version) {
                    tracing::warn!(
                        "cannot keep the repository settings for offline backups: {err}"
                    );
                }
            }
        }
        if update.version.is_some() {
            self.send_live(AgentToServer::from(Ack {
                correlation_id: id,
                accepted: refused.is_none(),
                reason: refused,
            }))
            .await;
        }
    }

    pub(super) async fn on_schedule_set(&mut self, set: &ScheduleSet) {
        let now = self.clock.now();
        match self.cron.apply(set, now) {
            Ok(()) => {
                tracing::info!(
                    version = set.version,
                    schedules = set.schedules.len(),
                    "schedule applied"
                );
                self.send_live(AgentToServer::from(ScheduleAck {
                    version: set.version,
                    applied_at: now,
                }))
                .await;
            }
            // Not acked: the server keeps the version unacked and re-pushes.
            Err(err) => tracing::error!(version = set.version, "schedule.set not applied: {err}"),
        }
    }

    pub(super) async fn on_command_run(&mut self, mut run: CommandRun) {
        let job_id = run.job_id.clone();
        match self.journal.job(&job_id) {
            Ok(Some(record)) => {
                tracing::info!(job_id = %job_id, "command.run for a job already journaled; answering from the journal");
                self.send_live(AgentToServer::from(CommandResult {
                    job_id,
                    accepted: true,
                    error: None,
                }))
                .await;
                if let JobState::Finished {
                    finished,
                    envelope_id,
                    ..
                } = record.state
                {
                    if !self.journal.outbox_contains(&envelope_id) {
                        // The server lost the result it acknowledged: say it again.
                        self.send_live(AgentToServer::from(finished)).await;
                    }
                }
                return;
            }
            Ok(None) => {}
            Err(err) => {
                tracing::error!(job_id = %job_id, "cannot read the journal: {err}");
                self.refuse(job_id, format!("agent journal unreadable: {err}"))
                    .await;
                return;
            }
        }
        // Another host's repository settings never reach the journal.
        let source = match SourceRepos::take_from(&mut run) {
            Ok(source) => source,
            Err(err) => return self.refuse(job_id, err.to_string()).await,
        };
        let source_url = source.as_ref().and_then(|s| s.url.as_ref());
        if let Some(Err(reason)) =
            source_url.map(|url| self.config.repository_allowed(url.expose()))
        {
            tracing::warn!(job_id = %job_id, "command.run refused: {reason}");
            return self.refuse(job_id, reason).await;
        }
        if let Err(err) = self.restic.job(&run, source.as_ref().unwrap_or(&self.repo)) {
            tracing::warn!(job_id = %job_id, kind = %run.kind, "command.run refused: {err}");
            self.refuse(job_id, err.to_string()).await;
            return;
        }
        // Nor does a dump's password.
        let dump_password = run.dump.as_mut().and_then(|dump| dump.password.take());
        let record = JobRecord::queued(run, Utc::now());
        if let Err(err) = self.journal.put_job(&record) {
            tracing::error!(job_id = %job_id, "cannot journal the job: {err}");
            self.refuse(job_id, format!("agent cannot persist the job: {err}"))
                .await;
            return;
        }
        tracing::info!(job_id = %job_id, kind = %record.kind(), "job accepted");
        if let Some(source) = source {
            self.source_repos.insert(&job_id, source);
        }
        if let Some(password) = dump_password {
            self.dump_passwords
                .insert(job_id.clone(), Secret::new(password));
        }
        self.queue.push_back(record);
        self.send_live(AgentToServer::from(CommandResult {
            job_id,
            accepted: true,
            error: None,
        }))
        .await;
    }

    pub(super) async fn refuse(&mut self, job_id: String, error: String) {
        self.send_live(AgentToServer::from(CommandResult {
            job_id,
            accepted: false,
            error: Some(error),
        }))
        .await;
    }

    pub(super) async fn on_command_cancel(&mut self, cancel: CommandCancel) {
        if let Some(Busy::Job { record, stop, .. }) = &self.busy {
            if record.job_id() == cancel.job_id {
                tracing::info!(job_id = %cancel.job_id, "cancel requested");
                // Err only if the job already ended and dropped its receiver.
                let _ = stop.send(Some(StopReason::Cancelled));
                return;
            }
        }
        if let Some(position) = self
            .queue
            .iter()
            .position(|record| record.job_id() == cancel.job_id)
        {
            if let Some(record) = self.queue.remove(position) {
                tracing::info!(job_id = %cancel.job_id, "queued job cancelled before it started");
                self.finish(record, FinishStatus::Cancelled, CANCELLED_ERROR.to_owned())
                    .await;
            }
            return;
        }
        tracing::info!(job_id = %cancel.job_id, "cancel for a job that is not running or queued; ignored");
    }

    // --- downloads --------------------------------------------------------

    /// A download's message or data frame goes out (dropped when offline:
    /// the server has forgotten the download then); an ended one is gone.
    pub(super) async fn on_download_event(&mut self, event: DownloadEvent) {
        match event {
            DownloadEvent::Send(Outgoing::Message(message)) => self.send_live(message).await,
            DownloadEvent::Send(Outgoing::Data(frame)) => {
                let Some(link) = self.link.as_mut() else {
                    return;
                };
                if let Err(err) = connection::send_binary(&mut link.ws, frame).await {
                    self.disconnect(&format!("send failed: {err}"));
                }
            }
            DownloadEvent::Done(download_id) => {
                tracing::info!(download_id = %download_id, "download ended");
            }
        }
    }
}
