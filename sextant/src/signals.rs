//! SIGINT and SIGTERM as one future, as every long-running command stops on either.

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; stop with SIGINT");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received, stopping"),
        () = term => tracing::info!("SIGTERM received, stopping"),
    }
}
