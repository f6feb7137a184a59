//! Stop signals for the daemons: SIGTERM and ctrl-c.
//!
//! Owns: installing the SIGTERM listener early (so an early SIGTERM is a clean stop rather
//! than the default kill) and waiting for either signal. Must never: stop anything itself.

/// Listens for SIGTERM from now on.
pub fn sigterm() -> Option<tokio::signal::unix::Signal> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM");
            None
        }
    }
}

/// Waits for SIGTERM (if listening) or ctrl-c; returns which.
pub async fn wait_for_signal(mut term: Option<tokio::signal::unix::Signal>) -> String {
    let sigterm = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "ctrl-c".to_owned(),
        _ = sigterm => "SIGTERM".to_owned(),
    }
}
