//! `run` and `reconcile`: the working commands that post.

use super::*;

/// `run` and `reconcile`.
pub(super) async fn work(
    args: RunArgs,
    mode: Mode,
    quiet: bool,
    json: bool,
) -> Result<ExitCode, CliError> {
    check_roles(Some(&args.input), &args.output, None, &args.service)?;
    let mut config = args.service.run_config()?;
    // Opened once, before credentials: an unreadable input stops the run before any request.
    let source = InputSource::open_off_runtime(&args.input, &args.format).await?;
    let needs_credentials = !(args.dry_run && mode == Mode::Run && !config.validation_code_auto);
    // Held for the whole run: dropping it stops the in-process simulator.
    let (sandbox, credentials) = if args.service.sandbox || needs_credentials {
        let (sandbox, credentials) = credentials(args.service.sandbox, &mut config).await?;
        (sandbox, Some(credentials))
    } else {
        // A dry run of `run` sends nothing, so it needs no credentials.
        (None, None)
    };
    let command = match mode {
        Mode::Run => "run",
        Mode::Reconcile { .. } => "reconcile",
    };
    let mut session = Session::start(command, &args.service, &config, sandbox);
    let show_progress = args.service.shows_progress(quiet);
    let (source, total) = if show_progress {
        progress::count_input_off_runtime(source, &args.input).await?
    } else {
        (source, None)
    };
    session.show_progress(show_progress, total, Counting::Rows);
    let result = pipeline::execute(Job {
        context: session.context(&args.output, args.force, config),
        input: args.input.clone(),
        source,
        resume: args.resume,
        dry_run: args.dry_run,
        mode,
        credentials,
    })
    .await;
    let report = session.end(result).await?;
    if let Some(error) = &report.input_error {
        tracing::error!("{error}");
    }
    Ok(session.finish(&report, quiet, json, &args))
}

/// The in-process simulator a `--sandbox` run holds (dropping it stops the simulator).
#[cfg(feature = "sandbox")]
pub(super) type Sandbox = simulator::SimHandle;

/// Without the `sandbox` feature there is never a simulator to hold.
#[cfg(not(feature = "sandbox"))]
pub(super) enum Sandbox {}

#[cfg(not(feature = "sandbox"))]
impl Sandbox {
    pub(super) async fn shutdown(self) {
        match self {}
    }
}

/// The sandbox's simulator and credentials, or the credentials from the environment.
pub(super) async fn credentials(
    sandbox: bool,
    config: &mut RunConfig,
) -> Result<(Option<Sandbox>, Credentials), CliError> {
    if !sandbox {
        let credentials = credentials_from_env(&config.authority, &config.resource)?;
        return Ok((None, credentials));
    }
    #[cfg(not(feature = "sandbox"))]
    return Err(JobError::Config(
        "this pc-qualify was built without the `sandbox` feature; rebuild with default features for --sandbox".into(),
    ).into());
    // The sandbox plays the cloud asked for, so `--cloud china --sandbox` checks China's resource.
    #[cfg(feature = "sandbox")]
    {
        let sim_config = SimConfig {
            cloud: config.cloud,
            ..SimConfig::sandbox()
        };
        let handle = simulator::start(sim_config, SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(CliError::SandboxStart)?;
        config.base_url = handle.base_url();
        config.authority = handle.base_url();
        tracing::info!(url = %handle.base_url(), "sandbox: simulator started");
        let credentials = Credentials::Refresh(RefreshCredentials {
            authority: config.authority.clone(),
            tenant: simulator::SANDBOX_TENANT.to_string(),
            client_id: simulator::SANDBOX_CLIENT_ID.to_string(),
            client_secret: Some(SecretString::from(
                simulator::SANDBOX_CLIENT_SECRET.to_string(),
            )),
            resource: config.resource.clone(),
            refresh_token: SecretString::from(simulator::SANDBOX_REFRESH_TOKEN.to_string()),
            token_file: None,
        });
        Ok((Some(handle), credentials))
    }
}
