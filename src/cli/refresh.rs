//! `pc-qualify refresh`.

use super::*;

/// `refresh`.
pub(super) async fn refresh(
    args: RefreshArgs,
    quiet: bool,
    json: bool,
) -> Result<ExitCode, CliError> {
    check_roles(Some(&args.input), &args.output, vec![], &args.service)?;
    let (mut session, config, credentials) = Session::open("refresh", &args.service).await?;
    // Rows of the earlier results file: the bar counts them as they are written.
    session.show_progress(
        args.service.shows_progress(quiet),
        None,
        progress::Counting::Rows,
    );
    let result = crate::engine::refresh::execute(crate::engine::refresh::RefreshJob {
        context: session.context(&args.output, args.force, config),
        input: args.input.clone(),
        credentials,
    })
    .await;
    let ended = session.end(result).await?;
    Ok(ended.finish(quiet, json, &args))
}
