//! `pc-qualify refresh`.

use super::*;

/// `refresh`.
pub(super) async fn refresh(
    args: RefreshArgs,
    quiet: bool,
    json: bool,
) -> Result<ExitCode, CliError> {
    check_roles(Some(&args.input), &args.output, None, &args.service)?;
    // Rows of the earlier results file: the bar counts them as they are written.
    let (mut session, config, credentials) =
        Session::open("refresh", &args.service, quiet, Counting::Rows).await?;
    let result = crate::engine::refresh::execute(crate::engine::refresh::RefreshJob {
        context: session.context(&args.output, args.force, config),
        input: args.input.clone(),
        credentials,
    })
    .await;
    let report = session.end(result).await?;
    Ok(session.finish(&report, quiet, json, &args))
}
