//! Entry point: parse flags, then either check the config, take one snapshot,
//! or run the sampler and the HTTP server until SIGTERM/SIGINT.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ocfs2_watchdog::actions::audit::StepLog;
use ocfs2_watchdog::actions::helper::{run_helper, HELPER_SUBCOMMAND};
use ocfs2_watchdog::actions::hostns::{executor_for_host, HostNamespace, Placement};
use ocfs2_watchdog::actions::unstack::UnstackIgnore;
use ocfs2_watchdog::cli::{init_logging, Args, Command, MaintenanceAction};
use ocfs2_watchdog::cluster::peers::Peers;
use ocfs2_watchdog::cluster::{self, Maintenance};
use ocfs2_watchdog::collector::Context;
use ocfs2_watchdog::config::AdminListen;
use ocfs2_watchdog::http::fdlimit;
use ocfs2_watchdog::http::serve::{serve, Deadlines, Gate, Listener};
use ocfs2_watchdog::http::{admin, router_with, AppState, Security};
use ocfs2_watchdog::rules::config::Mode;
use ocfs2_watchdog::rules::{self, control::Control};
use ocfs2_watchdog::sampler::{spawn_loop, Health, Sampler};
use ocfs2_watchdog::service;
use ocfs2_watchdog::snapshot::Snapshot;

fn main() -> ExitCode {
    // The hidden helper the daemon re-executes in PID 1's mount namespace
    // (src/actions/hostns.rs); not a user-facing subcommand.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == HELPER_SUBCOMMAND)
    {
        init_logging("warn", ocfs2_watchdog::cli::LogFormat::Text);
        return run_helper();
    }
    // The man page and completions for the Debian package (src/assets.rs).
    let mut raw = std::env::args_os().skip(1);
    if raw
        .next()
        .is_some_and(|a| a == ocfs2_watchdog::assets::GENERATE_ASSETS)
    {
        let Some(dir) = raw.next() else {
            eprintln!(
                "ocfs2-watchdog: {} needs a directory",
                ocfs2_watchdog::assets::GENERATE_ASSETS
            );
            return ExitCode::from(2);
        };
        return match ocfs2_watchdog::assets::write(std::path::Path::new(&dir)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("ocfs2-watchdog: cannot write the man page and completions: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let args = Args::parse_command_line();
    if let Some(command @ (Command::Status { .. } | Command::Check { .. })) = &args.command {
        return ExitCode::from(ocfs2_watchdog::cli::run_status_command(&args, command));
    }
    init_logging(&args.log_level, args.log_format);
    let config = match args.effective_config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("ocfs2-watchdog: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Maintenance { action }) = &args.command {
        return maintenance_command(action, &config);
    }
    // Certificate and token files are read now, so a bad path is a
    // configuration error (exit 2) here and under --check-config.
    let security = match Security::from_config(&config.web) {
        Ok(security) => security,
        Err(error) => {
            eprintln!("ocfs2-watchdog: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    // The cluster token is held to the admin token's rules, at start as
    // under --check-config: a guessable token would let anyone on the
    // interconnect speak for a node.
    if let Some(path) = &config.cluster.token_file {
        if let Err(error) = ocfs2_watchdog::secret::load_token(path) {
            eprintln!("ocfs2-watchdog: configuration error: cluster.token_file: {error}");
            return ExitCode::from(2);
        }
    }
    match service::check_watchdog_interval(config.sampler.interval) {
        service::WatchdogFit::Fits => {}
        service::WatchdogFit::Warning(message) => {
            eprintln!("ocfs2-watchdog: warning: {message}.");
        }
        service::WatchdogFit::Error(message) => {
            eprintln!("ocfs2-watchdog: configuration error: {message}.");
            return ExitCode::from(2);
        }
    }
    if args.check_config {
        // An existing state directory others may write is refused here as
        // at start; a missing one is created 0700 by the daemon.
        if let Err(error) = ocfs2_watchdog::durable::check_state_dir(&config.state_dir.0) {
            eprintln!("ocfs2-watchdog: configuration error: {error}");
            return ExitCode::from(2);
        }
        print!("{}", config.to_toml());
        print!("{}", rules::effective::render(&config.remediation));
        return check_action_namespace(&args, &config);
    }
    match run(args, config, security) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "Daemon stopped on an error.");
            ExitCode::FAILURE
        }
    }
}

/// `--check-config` also answers where actions would run: with a rootfs
/// other than `/`, enforce needs PID 1's mount namespace (exit 2 naming the
/// missing privilege); dry-run only warns.
fn check_action_namespace(args: &Args, config: &ocfs2_watchdog::config::Config) -> ExitCode {
    let paths = args.host_paths();
    if Placement::for_rootfs(paths.rootfs()) == Placement::OwnNamespace {
        eprintln!(
            "ocfs2-watchdog: actions run in the daemon's own mount namespace (--path.rootfs=/)."
        );
        return ExitCode::SUCCESS;
    }
    match HostNamespace::reach(&paths) {
        Ok(host) => {
            eprintln!(
                "ocfs2-watchdog: actions run in PID 1's mount namespace {} through the helper.",
                host.id()
            );
            ExitCode::SUCCESS
        }
        Err(error) if config.remediation.mode == Mode::Enforce => {
            eprintln!(
                "ocfs2-watchdog: configuration error: remediation.mode is enforce but actions \
                 cannot run in the host's mount namespace: {error}"
            );
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!(
                "ocfs2-watchdog: warning: dry-run re-checks would run in the container's mount \
                 namespace, not the host's, and enforce would refuse to start: {error}"
            );
            ExitCode::SUCCESS
        }
    }
}

fn run(
    args: Args,
    config: ocfs2_watchdog::config::Config,
    security: Security,
) -> anyhow::Result<()> {
    // A thread or task that panics ends the daemon; its supervisor
    // restarts it (docs/design.md says why not a 503).
    ocfs2_watchdog::liveness::install_panic_hook();
    if args.once {
        let text = ocfs2_watchdog::once::render(&config, args.host_paths())
            .context("making a scratch directory for the dry-run engine")?;
        print!("{text}");
        return Ok(());
    }
    // Before anything writes root's state there (the kernel-log position
    // is the first): a directory others may write could hold their links.
    ocfs2_watchdog::durable::ensure_state_dir(&config.state_dir.0)
        .context("the state directory is not safe to use")?;
    let config = Arc::new(config);
    let ctx = Arc::new(Context::new(args.host_paths(), Arc::clone(&config)));
    // Start following the kernel log now, not at the first tick.
    ocfs2_watchdog::kernel_log::source::ensure_started(&ctx.kernel_log, &ctx.paths, &config);
    let mut sampler = Sampler::new(ctx);

    let (publish, snapshots) = tokio::sync::watch::channel(Arc::new(Snapshot::empty()));
    let health = Arc::new(Health::default());

    let stop = Arc::new(AtomicBool::new(false));
    let control = Arc::new(Control::from_config(&config));
    ocfs2_watchdog::startup::log_start(args.config.as_deref(), &config, &control.pause_state());
    // Before any thread that could act: enforce from a container that cannot
    // reach the host's mount namespace must not start at all.
    // The o2cb restart audits each undo step on its own line.
    let steps = StepLog::new(&config.state_dir.0, config.remediation.mode.as_str());
    let unstack_ignore = UnstackIgnore::new(config.mounts.unstack_ignore.clone());
    let executor = executor_for_host(
        &args.host_paths(),
        &config.remediation,
        Some(steps),
        unstack_ignore.clone(),
    )
    .context("remediation.mode is enforce but actions cannot run in the host's mount namespace")?;
    let maintenance = Arc::new(Maintenance::open_with(
        &config.state_dir.0,
        &cluster::peers::local_node_name(&config.cluster, &args.host_paths()),
        control.audit(),
        cluster::maintenance::Limits::of(&config.cluster),
    ));
    ocfs2_watchdog::startup::log_maintenance(maintenance.record().as_ref());
    let peers = Arc::new(Peers::new(
        &config.cluster,
        args.host_paths(),
        Arc::clone(&maintenance),
    ));
    if let Err(why) = peers.node_known() {
        tracing::warn!(node = %peers.node(), error = %why, "This node is not identified in cluster.conf: no peers, and actions that need the cluster lease are held; set [cluster] node_name.");
    }
    let peers_thread = if peers.enabled() {
        // Before the engine starts: a daemon restarted during a cluster
        // maintenance learns it from the peers first.
        peers.poll_once();
        Some(
            Arc::clone(&peers)
                .spawn(Arc::clone(&stop))
                .context("starting the peer protocol thread")?,
        )
    } else {
        tracing::warn!("No [cluster] token_file: no peer protocol; maintenance stays on this node and what needs the peers stays alert only.");
        None
    };
    let (engine_thread, reports, engine_health) = rules::runner::spawn(
        Arc::clone(&config),
        executor,
        &args.host_paths(),
        Arc::clone(&control),
        snapshots.clone(),
        Arc::clone(&stop),
        Some((Arc::clone(&maintenance), Arc::clone(&peers))),
    )
    .context("starting the rule engine thread")?;
    sampler.attach_remediation(reports);
    health.watch_engine(engine_health);
    let sampler_thread = spawn_loop(sampler, publish, Arc::clone(&health), Arc::clone(&stop))
        .context("starting the sampler thread")?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let cluster_view = cluster::status_route::ClusterViewSource::new(
        Arc::clone(&peers),
        snapshots.clone(),
        Arc::new(config.check.clone()),
    );
    let cluster_view_thread = if peers.enabled() {
        Some(
            Arc::clone(&cluster_view)
                .spawn(Arc::clone(&stop))
                .context("starting the cluster view thread")?,
        )
    } else {
        None
    };
    let state = AppState {
        snapshots,
        health,
        interval: config.sampler.interval,
        started: Instant::now(),
        check: Arc::new(config.check.clone()),
    };
    let address = config.web.listen_address.clone();
    let mut first_snapshot = state.snapshots.clone();
    // Before any listener: the connection caps leave descriptors for the
    // collectors, the helper pipes and the audit log.
    let nofile = fdlimit::raise_nofile();
    let budget = fdlimit::budget(nofile, config.web.limits.max_connections)
        .context("sizing the connection caps")?;
    if budget.scrape < config.web.limits.max_connections {
        tracing::warn!(
            limit = nofile,
            configured = config.web.limits.max_connections,
            cap = budget.scrape,
            "The open-file limit cannot hold web.limits.max_connections and the reserve; lowered the cap (raise LimitNOFILE)."
        );
    }
    tracing::info!(
        open_files = budget.limit,
        scrape = budget.scrape,
        admin = budget.admin,
        peer = budget.peer,
        reserved = fdlimit::FD_RESERVE,
        "Connection caps."
    );
    let mut security = security;
    security.limits.max_connections = budget.scrape;
    let deadlines = Deadlines::from_limits(&config.web.limits);
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .with_context(|| format!("listening on {address}"))?;
        // The bound address, so that port 0 (tests) can be read back.
        let bound = listener
            .local_addr()
            .map_or_else(|_| address.clone(), |a| a.to_string());
        tracing::info!(
            address = %bound,
            tls = security.tls.is_some(),
            auth = security.auth.is_some(),
            details_hidden = security.redact_details,
            version = env!("CARGO_PKG_VERSION"),
            "Listening."
        );
        // READY=1 means /readyz answers 200: listener bound, snapshot taken.
        tokio::spawn(async move {
            if let Ok(snapshot) = first_snapshot.wait_for(|s| s.is_ready()).await {
                service::ready(&snapshot);
                ocfs2_watchdog::startup::log_collector_sources(&snapshot);
                tracing::info!("Ready.");
            }
        });
        tokio::spawn(reload_on_sighup(
            security.clone(),
            Arc::clone(&control),
            args.clone(),
            unstack_ignore,
            Arc::clone(&peers),
        ));
        let (stopping, stopped) = tokio::sync::watch::channel(false);
        if let Some(listen) = peers.listen_address().filter(|_| peers.enabled()) {
            let mut stopped = stopped.clone();
            let router = cluster::peers::routes(
                Arc::clone(&peers),
                cluster::status_route::routes(Arc::clone(&cluster_view)),
            );
            let peer_stats = security.stats.listener("peer");
            tokio::spawn(async move {
                let Some(listener) = bind_peer_listener(&listen, &mut stopped).await else {
                    return;
                };
                tracing::info!(address = %listen, "Peer protocol listening.");
                let shutdown = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                // `serve` hands each request its TCP source address, which
                // is checked against the sender's cluster.conf ip_address.
                let gate = Gate::new(budget.peer, peer_stats);
                serve(Listener::Tcp(listener), router, gate, deadlines, shutdown).await;
            });
        }
        // The scrape port has no state-changing route: they are on the
        // admin socket and the optional TCP admin listener.
        let cluster_routes =
            cluster::admin::routes(Arc::clone(&control), Arc::clone(&maintenance));
        let admin_router = admin::router(
            Arc::clone(&control),
            cluster_routes.clone(),
            &config.web.limits,
        );
        // `/status` too on the socket only: root-only, it needs no scrape
        // credentials, which a TCP admin listener must not bypass.
        let socket_router = admin::router(
            Arc::clone(&control),
            cluster_routes.merge(ocfs2_watchdog::http::status_routes(state.clone())),
            &config.web.limits,
        );
        let admin_gate = Gate::new(budget.admin, security.stats.listener("admin"));
        if let Some(path) = config.admin_socket() {
            let own_directory = !matches!(config.web.admin_listen(), Some(AdminListen::Unix(_)));
            let listener = admin::bind_socket(&path, own_directory)
                .context("opening the admin socket for pause, resume, reset and maintenance")?;
            let mut stopped = stopped.clone();
            let (router, gate) = (socket_router, admin_gate.clone());
            tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                admin::serve_socket(listener, &path, router, gate, deadlines, shutdown).await;
            });
        }
        if let Some(listen) = config.web.admin_tcp() {
            let (address, tls) = match listen {
                AdminListen::Network(address) => (address, security.tls.clone()),
                AdminListen::Loopback(address) => (address, None),
                AdminListen::Unix(_) => unreachable!("admin_tcp is TCP"),
            };
            if matches!(listen, AdminListen::Network(_)) && tls.is_none() {
                anyhow::bail!("web.admin_listen {address} is not loopback and no TLS is configured");
            }
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                if let Err(error) =
                    admin::serve_tcp(address, tls, admin_router, admin_gate, deadlines, shutdown)
                        .await
                {
                    tracing::error!(address = %address, error = %error, "Cannot serve the control endpoints on TCP; use the admin socket.");
                }
            });
        }
        let state_changing = axum::Router::new();
        let app = router_with(state, &security, state_changing)
            .layer(axum::Extension(Arc::clone(&cluster_view)));
        let shutdown = async move {
            shutdown_signal().await;
            let _ = stopping.send(true);
        };
        security
            .serve(listener, app, shutdown)
            .await
            .context("serving HTTP")
    })?;
    stop.store(true, Ordering::Relaxed);
    if let Some(thread) = peers_thread {
        let _ = thread.join();
    }
    if let Some(thread) = cluster_view_thread {
        let _ = thread.join();
    }
    let _ = sampler_thread.join();
    let _ = engine_thread.join();
    tracing::info!("Stopped.");
    Ok(())
}

/// Binds the peer listener, retrying with a backoff (1 s doubling to 60 s)
/// while the interconnect address is not up yet or the port is taken;
/// `None` once the daemon stops.
async fn bind_peer_listener(
    listen: &str,
    stopped: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::net::TcpListener> {
    let mut backoff = std::time::Duration::from_secs(1);
    loop {
        match tokio::net::TcpListener::bind(listen).await {
            Ok(listener) => return Some(listener),
            Err(error) => {
                tracing::error!(address = %listen, error = %error, retry_seconds = backoff.as_secs(), "Cannot serve the peer protocol; peers cannot see this node until the bind succeeds.");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped.wait_for(|s| *s) => return None,
        }
        backoff = backoff
            .saturating_mul(2)
            .min(std::time::Duration::from_secs(60));
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::error!(error = %error, "Cannot listen for SIGTERM; only SIGINT stops the daemon.");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "Shutting down."),
        _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "Shutting down."),
    }
    service::stopping();
}

/// SIGHUP reloads the TLS certificate, the bearer, admin and cluster tokens, and
/// reopens the audit log (after logrotate). Installing the handler also
/// keeps SIGHUP from killing the daemon, its default action.
async fn reload_on_sighup(
    security: Security,
    control: Arc<Control>,
    args: Args,
    unstack_ignore: UnstackIgnore,
    peers: Arc<Peers>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(hup) => hup,
        Err(error) => {
            tracing::error!(error = %error, "Cannot listen for SIGHUP; certificates reload only on restart.");
            return;
        }
    };
    while hup.recv().await.is_some() {
        tracing::info!(
            signal = "SIGHUP",
            "Reloading certificates and tokens, reopening the audit log."
        );
        security.reload();
        control.reload();
        peers.reload();
        // What must be left stacked takes effect at once, in the actions;
        // every other setting still needs a restart.
        match args.effective_config() {
            Ok(config) => {
                tracing::info!(patterns = ?config.mounts.unstack_ignore, "Reloaded [mounts] unstack_ignore.");
                unstack_ignore.set(config.mounts.unstack_ignore);
            }
            Err(error) => {
                tracing::error!(error = %error, "Cannot reload the configuration; keeping [mounts] unstack_ignore as it was.");
            }
        }
    }
}

/// `ocfs2-watchdog maintenance on|off|status`: asks the local daemon's
/// admin endpoint with the admin token; prints its answer. Exit 0 on
/// success, 1 when the daemon refused or could not be reached.
fn maintenance_command(
    action: &MaintenanceAction,
    config: &ocfs2_watchdog::config::Config,
) -> ExitCode {
    use ocfs2_watchdog::cluster::client::{encode, request};
    // Refused here, before the daemon is asked, with the same check the
    // daemon makes (it refuses too: other clients exist).
    if let MaintenanceAction::On {
        duration: Some(duration),
        ..
    } = action
    {
        if let Err(error) = cluster::admin::parse_for(duration, config.cluster.max_maintenance) {
            eprintln!(
                "ocfs2-watchdog: maintenance on --for {duration}: {error} ([cluster] max_maintenance)"
            );
            return ExitCode::from(2);
        }
    }
    let Some(path) = config.web.admin_token_file.as_deref() else {
        eprintln!(
            "ocfs2-watchdog: no admin token: set [web] admin_token_file (docs/deploy.md, \"Admin socket\")"
        );
        return ExitCode::FAILURE;
    };
    let token = match ocfs2_watchdog::secret::load_token(path) {
        Ok(token) => token,
        Err(error) => {
            eprintln!("ocfs2-watchdog: web.admin_token_file: {error}");
            return ExitCode::FAILURE;
        }
    };
    // The daemon serves the control routes on this socket whenever a token
    // is configured; a TCP admin listener is for remote tools.
    let address = match config.admin_socket() {
        Some(socket) => format!("unix:{}", socket.display()),
        None => {
            eprintln!("ocfs2-watchdog: no admin socket configured");
            return ExitCode::FAILURE;
        }
    };
    let token = Some(token.expose().to_string());
    let (method, path) = match action {
        MaintenanceAction::On { reason, duration } => {
            let mut path = format!("/maintenance/on?reason={}", encode(reason));
            if let Some(duration) = duration {
                path.push_str(&format!("&for={}", encode(duration)));
            }
            ("POST", path)
        }
        MaintenanceAction::Off => ("POST", "/maintenance/off".to_string()),
        MaintenanceAction::Status => ("GET", "/maintenance".to_string()),
    };
    match request(
        &address,
        method,
        &path,
        token.as_deref(),
        Duration::from_secs(10),
    ) {
        Ok(answer) if answer.status == 200 => {
            println!("{}", answer.body.trim_end());
            ExitCode::SUCCESS
        }
        Ok(answer) => {
            eprintln!(
                "ocfs2-watchdog: {address} answered {}: {}",
                answer.status,
                answer.body.trim_end()
            );
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("ocfs2-watchdog: {error}");
            ExitCode::FAILURE
        }
    }
}
