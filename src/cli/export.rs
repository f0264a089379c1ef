//! `pc-qualify export`.

use super::*;

/// `export`.
pub(super) async fn export(
    args: ExportArgs,
    quiet: bool,
    json: bool,
) -> Result<ExitCode, CliError> {
    let unread = (args.output != "-").then(|| {
        let unread = crate::engine::export::unread_path(&args.output);
        Role::new("the .unread file of --output", unread)
    });
    check_roles(None, &args.output, unread, &args.service)?;
    let (mut session, config, credentials) =
        Session::open("export", &args.service, quiet, Counting::Customers).await?;
    let result = crate::engine::export::execute(crate::engine::export::ExportJob {
        context: session.context(&args.output, args.force, config),
        resume: args.resume,
        qualification: args.qualification,
        credentials,
    })
    .await;
    let report = session.end(result).await?;
    if let Some(error) = &report.list_error {
        tracing::error!("{error}");
    }
    Ok(session.finish(&report, quiet, json, &args))
}
