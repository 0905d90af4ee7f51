//! The agent as a native Windows service: the Service Control Manager
//! starts `restic-manager-agent.exe service run --config …` ([`install`]
//! registers that), [`run`] connects to it, reports Running, turns its Stop
//! and Shutdown controls into the daemon's shutdown future, reports
//! StopPending while the daemon stops restic and flushes its outbox, and
//! Stopped with the daemon's result (a failure makes the SCM restart it).

use std::ffi::{OsStr, OsString};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceErrorControl, ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod,
    ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{
    self, ServiceControlHandlerResult, ServiceStatusHandle,
};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

use super::{default_service_log_path, RotatingLogFile, SERVICE_LOG_MAX_BYTES};

/// The service's name (`sc.exe query restic-manager-agent`).
pub const SERVICE_NAME: &str = "restic-manager-agent";
/// The name shown in services.msc.
pub const SERVICE_DISPLAY_NAME: &str = "restic-manager agent";
const SERVICE_DESCRIPTION: &str =
    "Runs restic on this host for the restic-manager server (backups, retention, checks).";
/// Time announced for a stop: restic's cancel grace, a post hook and
/// the outbox flush fit in it (the systemd unit allows 90 s too).
const STOP_WAIT_HINT: Duration = Duration::from_secs(90);
/// Wait before the SCM restarts a failed agent (systemd: RestartSec=5).
const RESTART_DELAY: Duration = Duration::from_secs(5);
/// Failures older than this no longer count towards the restart actions.
const FAILURE_RESET: Duration = Duration::from_secs(24 * 60 * 60);
/// How long `uninstall` waits for the running service to stop.
const UNINSTALL_STOP_WAIT: Duration = Duration::from_secs(120);
/// Service-specific exit code reported when the daemon failed.
const EXIT_AGENT_FAILED: u32 = 1;

/// `ERROR_ACCESS_DENIED`.
const ERROR_ACCESS_DENIED: i32 = 5;
/// `ERROR_FAILED_SERVICE_CONTROLLER_CONNECT`: not started by the SCM.
const ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: i32 = 1063;
/// `ERROR_SERVICE_DOES_NOT_EXIST`.
const ERROR_SERVICE_DOES_NOT_EXIST: i32 = 1060;
/// `ERROR_SERVICE_NOT_ACTIVE`: a stop sent to a stopped service.
const ERROR_SERVICE_NOT_ACTIVE: i32 = 1062;

/// The future the daemon runs until: resolves on the SCM's Stop or
/// Shutdown.
pub type ShutdownFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What the service runs: the daemon, until the future it is given
/// resolves; blocks (it starts its own async runtime).
pub type ServiceBody = Box<dyn FnOnce(ShutdownFuture) -> Result<(), String> + Send>;

/// The body handed from [`run`] (main thread) to the service's main
/// function (a thread the SCM starts): the FFI entry point cannot carry it.
static BODY: Mutex<Option<ServiceBody>> = Mutex::new(None);

/// Errors of the service commands.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// `service run` was started from a console, not by the SCM.
    #[error(
        "not started by the Windows Service Control Manager: use `restic-manager-agent run` \
         in a console, or `service install` and then `sc.exe start {SERVICE_NAME}`"
    )]
    NotUnderServiceManager,
    /// `uninstall` found no such service.
    #[error("the service {SERVICE_NAME} is not installed")]
    NotInstalled,
    /// A Service Control Manager call failed.
    #[error("{action}: {message}")]
    Windows {
        /// What was being done.
        action: &'static str,
        /// The system's reason.
        message: String,
    },
    /// `run` was called twice in one process.
    #[error("the service body was already taken")]
    BodyTaken,
}

/// A [`ServiceError::Windows`] maker for `map_err`; the crate's own
/// message hides the OS error, so it is spelled out (with a hint when
/// the cause is a missing elevation).
fn windows(action: &'static str) -> impl FnOnce(windows_service::Error) -> ServiceError {
    move |err| {
        let message = match &err {
            windows_service::Error::Winapi(io)
                if io.raw_os_error() == Some(ERROR_ACCESS_DENIED) =>
            {
                format!("{io} (run it from an elevated prompt, as an administrator)")
            }
            windows_service::Error::Winapi(io) => io.to_string(),
            other => other.to_string(),
        };
        ServiceError::Windows { action, message }
    }
}

fn os_error(err: &windows_service::Error) -> Option<i32> {
    match err {
        windows_service::Error::Winapi(io) => io.raw_os_error(),
        _ => None,
    }
}

/// Runs `body` as the service: logs go to the service log file (a
/// service has no console), then this thread becomes the SCM's control
/// dispatcher until the service has stopped. Fails at once with
/// [`ServiceError::NotUnderServiceManager`] from a console.
pub fn run(body: ServiceBody) -> Result<(), ServiceError> {
    init_service_tracing();
    *BODY.lock().map_err(|_| ServiceError::BodyTaken)? = Some(body);
    service_dispatcher::start(SERVICE_NAME, ffi_service_main).map_err(|err| {
        if os_error(&err) == Some(ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) {
            ServiceError::NotUnderServiceManager
        } else {
            windows("cannot start the service control dispatcher")(err)
        }
    })
}

/// Tracing into the service log, filtered like the console
/// (`RESTIC_MANAGER_LOG`, default `info`). Without a log file the
/// service still runs: backups matter more than their log.
fn init_service_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RESTIC_MANAGER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false);
    // Err only if a subscriber is already set: keep that one.
    let _ = match RotatingLogFile::open(&default_service_log_path(), SERVICE_LOG_MAX_BYTES) {
        Ok(file) => builder.with_writer(file).try_init(),
        Err(_) => builder.with_writer(std::io::stderr).try_init(),
    };
}

define_windows_service!(ffi_service_main, service_main);

/// The service's main function, on a thread the SCM starts.
fn service_main(_arguments: Vec<OsString>) {
    if let Err(err) = serve() {
        tracing::error!("the Windows service failed: {err}");
    }
}

fn serve() -> Result<(), ServiceError> {
    let body = BODY
        .lock()
        .ok()
        .and_then(|mut body| body.take())
        .ok_or(ServiceError::BodyTaken)?;
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let handle = service_control_handler::register(SERVICE_NAME, move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            stop_tx.send_replace(true);
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    })
    .map_err(windows("cannot register the service control handler"))?;
    set_status(handle, ServiceState::Running, ServiceExitCode::NO_ERROR)?;
    tracing::info!(service = SERVICE_NAME, "running as a Windows service");
    let shutdown: ShutdownFuture = Box::pin(async move {
        // Err: the handler, and with it the sender, is gone; that only
        // happens as the service ends, so stopping is right then too.
        let _ = stop_rx.wait_for(|stop| *stop).await;
        tracing::info!("stop requested by the Service Control Manager");
        if let Err(err) = set_status(handle, ServiceState::StopPending, ServiceExitCode::NO_ERROR) {
            tracing::warn!("{err}");
        }
    });
    let exit_code = match body(shutdown) {
        Ok(()) => ServiceExitCode::NO_ERROR,
        Err(message) => {
            tracing::error!("the agent stopped: {message}");
            ServiceExitCode::ServiceSpecific(EXIT_AGENT_FAILED)
        }
    };
    set_status(handle, ServiceState::Stopped, exit_code)
}

/// Reports `state` to the SCM: Running accepts Stop and Shutdown;
/// StopPending announces [`STOP_WAIT_HINT`].
fn set_status(
    handle: ServiceStatusHandle,
    state: ServiceState,
    exit_code: ServiceExitCode,
) -> Result<(), ServiceError> {
    let (controls_accepted, checkpoint, wait_hint) = match state {
        ServiceState::Running => (
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
            0,
            Duration::ZERO,
        ),
        ServiceState::StopPending => (ServiceControlAccept::empty(), 1, STOP_WAIT_HINT),
        _ => (ServiceControlAccept::empty(), 0, Duration::ZERO),
    };
    handle
        .set_service_status(ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted,
            exit_code,
            checkpoint,
            wait_hint,
            process_id: None,
        })
        .map_err(windows("cannot report the service status"))
}

/// What [`install`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// The service was registered.
    Created,
    /// It existed; its command line and settings were replaced.
    Updated,
}

/// Registers (or updates) the service: own process, started
/// automatically at boot as LocalSystem (so restic can read every
/// file), running `executable launch_arguments…`, restarted 5 s after
/// any failure. Needs an elevated prompt. Does not start it.
pub fn install(
    executable: PathBuf,
    launch_arguments: Vec<OsString>,
) -> Result<Installed, ServiceError> {
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .map_err(windows("cannot open the Service Control Manager"))?;
    let info = ServiceInfo {
        name: OsString::from(SERVICE_NAME),
        display_name: OsString::from(SERVICE_DISPLAY_NAME),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: executable,
        launch_arguments,
        dependencies: vec![],
        account_name: None, // LocalSystem
        account_password: None,
    };
    // START: restart failure actions need it on the handle.
    let access = ServiceAccess::CHANGE_CONFIG | ServiceAccess::START;
    let (service, installed) = match manager.open_service(SERVICE_NAME, access) {
        Ok(service) => {
            service
                .change_config(&info)
                .map_err(windows("cannot update the service"))?;
            (service, Installed::Updated)
        }
        Err(err) if os_error(&err) == Some(ERROR_SERVICE_DOES_NOT_EXIST) => {
            let service = manager
                .create_service(&info, access)
                .map_err(windows("cannot create the service"))?;
            (service, Installed::Created)
        }
        Err(err) => return Err(windows("cannot open the service")(err)),
    };
    service
        .set_description(OsStr::new(SERVICE_DESCRIPTION))
        .map_err(windows("cannot set the service description"))?;
    let restart = ServiceAction {
        action_type: ServiceActionType::Restart,
        delay: RESTART_DELAY,
    };
    service
        .update_failure_actions(ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(FAILURE_RESET),
            reboot_msg: None,
            command: None,
            actions: Some(vec![restart.clone(), restart.clone(), restart]),
        })
        .map_err(windows("cannot set the service's restart on failure"))?;
    // A stop with a non-zero exit code (the agent failed) counts too.
    service
        .set_failure_actions_on_non_crash_failures(true)
        .map_err(windows("cannot set the service's restart on failure"))?;
    Ok(installed)
}

/// Stops the service (waiting up to 2 minutes for the agent to stop
/// restic and flush its outbox) and removes it. Needs an elevated
/// prompt.
pub fn uninstall() -> Result<(), ServiceError> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .map_err(windows("cannot open the Service Control Manager"))?;
    let service = manager
        .open_service(
            SERVICE_NAME,
            ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
        )
        .map_err(|err| {
            if os_error(&err) == Some(ERROR_SERVICE_DOES_NOT_EXIST) {
                ServiceError::NotInstalled
            } else {
                windows("cannot open the service")(err)
            }
        })?;
    let status = service
        .query_status()
        .map_err(windows("cannot query the service"))?;
    if status.current_state != ServiceState::Stopped {
        match service.stop() {
            Ok(_) => {}
            Err(err) if os_error(&err) == Some(ERROR_SERVICE_NOT_ACTIVE) => {}
            Err(err) => return Err(windows("cannot stop the service")(err)),
        }
        let deadline = std::time::Instant::now() + UNINSTALL_STOP_WAIT;
        while service
            .query_status()
            .map_err(windows("cannot query the service"))?
            .current_state
            != ServiceState::Stopped
        {
            if std::time::Instant::now() >= deadline {
                // DeleteService still marks it; it goes once stopped.
                tracing::warn!("the service did not stop in time; it is removed once it stops");
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    service
        .delete()
        .map_err(windows("cannot delete the service"))
}
