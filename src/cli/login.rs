//! `pc-qualify login`.

use super::*;
use crate::cli::error::CliError;

/// `login`: sign in, save the refresh token; Ctrl-C ends it with 130 and nothing saved.
pub(super) async fn login(
    args: crate::partner_center::login::LoginArgs,
    quiet: bool,
) -> Result<ExitCode, CliError> {
    let login = crate::partner_center::login::Login::from_args(args)?;
    let stop = Stop::default();
    let signals = tokio::spawn(forward_signals(stop.clone()));
    let outcome = tokio::select! {
        result = login.run() => Some(result),
        _ = stop.wait() => None,
    };
    signals.abort();
    match outcome {
        None => {
            eprintln!("pc-qualify: login interrupted; nothing was saved");
            Ok(ExitCode::Interrupted)
        }
        Some(Err(err)) => Err(err.into()),
        Some(Ok(path)) => {
            if !quiet {
                eprintln!(
                    "pc-qualify: signed in; the refresh token is saved in {} (readable by you only).\n  Use it with: PC_REFRESH_TOKEN_FILE={} PC_TENANT_ID={} PC_CLIENT_ID={} pc-qualify run ...",
                    path.display(),
                    shell_quote(&path.display().to_string()),
                    shell_quote(&login.tenant),
                    shell_quote(&login.client_id),
                );
            }
            Ok(ExitCode::Success)
        }
    }
}
