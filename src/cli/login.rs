//! `pc-qualify login`.

use super::*;

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
            let path = path.display().to_string();
            if !quiet {
                eprint!(
                    "{}",
                    signed_in(&path, &login.tenant, &login.client_id, cfg!(windows))
                );
            }
            Ok(ExitCode::Success)
        }
    }
}

/// What `login` says once the token is saved: where, and how to use it in the user's shell.
/// The file is readable by its owner only (Unix mode 0600, a Windows DACL for the user alone).
/// Unix: one command line sets the variables; Windows: cmd.exe and PowerShell set them each
/// their own way, before the command.
fn signed_in(path: &str, tenant: &str, client_id: &str, windows: bool) -> String {
    let vars = [
        ("PC_REFRESH_TOKEN_FILE", path),
        ("PC_TENANT_ID", tenant),
        ("PC_CLIENT_ID", client_id),
    ];
    if !windows {
        let assignments: Vec<String> = vars
            .iter()
            .map(|(name, value)| format!("{name}={}", shell_quote(value)))
            .collect();
        return format!(
            "pc-qualify: signed in; the refresh token is saved in {path} (readable by you only).\n  Use it with: {} pc-qualify run ...\n",
            assignments.join(" ")
        );
    }
    // cmd.exe: quotes around the whole assignment keep a path with spaces and leave none in the
    // value. PowerShell: single quotes expand nothing (`$` and backticks stay), `'` doubled.
    let cmd: String = vars
        .iter()
        .map(|(name, value)| format!("    set \"{name}={value}\"\n"))
        .collect();
    let powershell: Vec<String> = vars
        .iter()
        .map(|(name, value)| format!("$env:{name} = '{}'", value.replace('\'', "''")))
        .collect();
    format!(
        "pc-qualify: signed in; the refresh token is saved in {path} (readable by you only).\n  Use it in cmd.exe with:\n{cmd}    pc-qualify run ...\n  or in PowerShell with:\n    {}\n    pc-qualify run ...\n",
        powershell.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_says_the_file_is_private_and_sets_the_variables_on_the_command_line() {
        let text = signed_in(
            "/home/ops/my token",
            "contoso.onmicrosoft.com",
            "app",
            false,
        );
        assert_eq!(
            text,
            "pc-qualify: signed in; the refresh token is saved in /home/ops/my token (readable by you only).\n  Use it with: PC_REFRESH_TOKEN_FILE='/home/ops/my token' PC_TENANT_ID=contoso.onmicrosoft.com PC_CLIENT_ID=app pc-qualify run ...\n"
        );
    }

    #[test]
    fn windows_sets_the_variables_for_cmd_and_powershell_and_says_the_file_is_private() {
        let text = signed_in(
            r"C:\Users\o'brien\pcq token",
            "contoso.onmicrosoft.com",
            "app",
            true,
        );
        // The token file's DACL grants the user alone (domain::atomic).
        assert!(text.starts_with("pc-qualify: signed in; the refresh token is saved in C:\\Users\\o'brien\\pcq token (readable by you only).\n"), "{text}");
        assert!(
            text.contains(concat!(
                "    set \"PC_REFRESH_TOKEN_FILE=C:\\Users\\o'brien\\pcq token\"\n",
                "    set \"PC_TENANT_ID=contoso.onmicrosoft.com\"\n",
                "    set \"PC_CLIENT_ID=app\"\n",
                "    pc-qualify run ...\n"
            )),
            "{text}"
        );
        assert!(
            text.contains("    $env:PC_REFRESH_TOKEN_FILE = 'C:\\Users\\o''brien\\pcq token'; $env:PC_TENANT_ID = 'contoso.onmicrosoft.com'; $env:PC_CLIENT_ID = 'app'\n    pc-qualify run ...\n"),
            "{text}"
        );
    }
}
