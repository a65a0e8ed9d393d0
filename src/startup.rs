//! The one start-up path, for `labgate serve` and every test: open storage, apply migrations,
//! load key material, bind the HTTP server (port 0 allowed).

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::ExposeSecret;
use tokio::task::JoinHandle;
use tracing_actix_web::TracingLogger;

use crate::background;
use crate::config::{ConfigError, DatabaseUrl, Settings, TlsFiles};
use crate::crypto::{MasterKey, SealedColumn, Sealer, ServiceTokenKeys, TokenHash, generate_token};
use crate::db::{self, DbConnection, DbPool, meta};
use crate::http::{self, RequestSpan};
use crate::oauth::{InstanceClients, IssuerKeys};
use crate::service::audit::AuditLog;
use crate::service::handout_cache::HandoutCache;
use crate::service::{Context, gauges, key_rotation, refresh, webhooks};

pub struct Application {
    port: u16,
    server: Server,
    context: Context,
    /// The background refresher's supervisor, when the refresher is on.
    refresher: Option<JoinHandle<()>>,
    /// The supervisor of the task that keeps the metrics gauges current.
    gauges: JoinHandle<()>,
    /// The supervisor of the webhook delivery (every process runs one; leases share the work).
    webhooks: JoinHandle<()>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // The port and the certificate first: a start that cannot serve stops before a
        // generated admin token is printed, and so before that token is spent.
        let listener = TcpListener::bind(settings.server.listen).with_context(|| {
            format!(
                "cannot listen on {} (server.listen)",
                settings.server.listen
            )
        })?;
        let port = listener.local_addr()?.port();
        let tls = settings
            .server
            .tls
            .as_ref()
            .map(tls_server_config)
            .transpose()?;
        let (pool, keys) = {
            let settings = settings.clone();
            tokio::task::spawn_blocking(move || {
                let pool = open_database(&settings)?;
                let keys = load_key_material(&pool, &settings)?;
                anyhow::Ok((pool, keys))
            })
            .await??
        };
        let ctx = Context {
            pool: pool.clone(),
            sealer: Arc::new(keys.sealer),
            master_keys: Arc::new(keys.master_keys),
            admin_token: keys.admin_token,
            service_tokens: Arc::new(keys.service_tokens),
            clients: Arc::new(InstanceClients::default()),
            issuer_keys: Arc::new(IssuerKeys::default()),
            exchange_views: Arc::default(),
            refreshes: Arc::default(),
            refresher: settings.refresher.clone(),
            audit: AuditLog::start(settings.database.url.clone()),
            handouts: handout_cache(&settings.database.url),
            project_ids: Default::default(),
            metrics: Arc::default(),
            public_url: settings.server.public_url.clone(),
            outbound: settings.outbound.clone(),
            gitlab_sign_in: settings.admin.gitlab_sign_in.clone().map(Arc::new),
        };
        let refresher = settings.refresher.enabled.then(|| {
            let task_ctx = ctx.clone();
            background::supervise("refresher", ctx.metrics.clone(), move || {
                refresh::run_background(task_ctx.clone())
            })
        });
        let gauges = {
            let task_ctx = ctx.clone();
            background::supervise("gauges", ctx.metrics.clone(), move || {
                gauges::keep_current(task_ctx.clone())
            })
        };
        let webhooks = {
            let task_ctx = ctx.clone();
            background::supervise("webhooks", ctx.metrics.clone(), move || {
                webhooks::delivery::run_background(task_ctx.clone())
            })
        };
        let context = ctx.clone();
        let ctx = web::Data::new(ctx);

        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(actix_web::middleware::from_fn(http::time_answers))
                .wrap(actix_web::middleware::from_fn(http::echo_request_id))
                .wrap(TracingLogger::<RequestSpan>::new())
                .app_data(ctx.clone())
                .configure(http::routes)
                .default_service(web::to(http::no_route))
        });
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let server = match tls {
            Some(config) => server.listen_rustls_0_23(listener, config)?,
            None => server.listen(listener)?,
        };
        let scheme = if settings.server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        tracing::info!(
            listen = %settings.server.listen, port, scheme, public_url = %settings.server.public_url,
            "labgate is listening"
        );
        Ok(Self {
            port,
            server: server.run(),
            context,
            refresher,
            gauges,
            webhooks,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The use cases' shared state, for tools and tests that drive them directly.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// Stops the server when called; for tests that restart labgate.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped, then stops the background refresher (no new refreshes start), lets
    /// refreshes under way finish and writes queued audit events.
    pub async fn run(self) -> std::io::Result<()> {
        let served = self.server.await;
        self.gauges.abort();
        // A delivery cut short keeps its lease until it runs out, then goes again: at least once.
        self.webhooks.abort();
        if let Some(refresher) = self.refresher {
            refresher.abort();
            let _ = refresher.await;
        }
        self.context
            .refreshes
            .drain(std::time::Duration::from_secs(30))
            .await;
        self.context.audit.flush().await;
        served
    }
}

/// What handouts remember; with PostgreSQL, trusted only while other processes' changes are
/// heard. The listener thread ends once the cache is dropped.
fn handout_cache(url: &DatabaseUrl) -> Arc<HandoutCache> {
    let DatabaseUrl::Postgres(url) = url else {
        return Arc::new(HandoutCache::alone());
    };
    let cache = Arc::new(HandoutCache::with_change_feed());
    let (watched, url) = (Arc::downgrade(&cache), url.clone());
    std::thread::Builder::new()
        .name("labgate-changes".into())
        .spawn(move || {
            db::changes::listen(&url, |feed| {
                watched.upgrade().map(|cache| cache.hear(feed)).is_some()
            })
        })
        .expect("the operating system starts a thread");
    cache
}

/// Opens the pool and applies pending migrations, as `labgate serve` and `labgate migrate` do.
pub fn open_database(settings: &Settings) -> anyhow::Result<DbPool> {
    let pool =
        db::connect(&settings.database).map_err(|e| ConfigError::invalid("database.url", e))?;
    let mut conn = pool.get().context("cannot get a database connection")?;
    let applied = db::run_migrations(&mut conn)
        .map_err(|e| anyhow::anyhow!("applying migrations failed: {e}"))?;
    if applied > 0 {
        tracing::info!(migrations = applied, "database migrations applied");
    }
    Ok(pool)
}

struct KeyMaterial {
    sealer: Sealer,
    master_keys: Vec<MasterKey>,
    admin_token: TokenHash,
    service_tokens: ServiceTokenKeys,
}

/// The sealing key (configured, or created on first start), the admin token's hash, and the
/// key that MACs service tokens (created once, sealed, shared by every process).
fn load_key_material(pool: &DbPool, settings: &Settings) -> anyhow::Result<KeyMaterial> {
    let (key, previous) = configured_keys(settings)?;
    let mut conn = pool.get().context("cannot get a database connection")?;
    let sealer = key_rotation::sealer_for_database(&mut conn, &key, previous.as_ref())?;

    let admin_token = match &settings.admin.token {
        Some(token) => TokenHash::of_secret(token),
        None => {
            let candidate = generate_token("lgadm_");
            let candidate_hash = TokenHash::of_secret(&candidate).to_hex();
            let stored = meta::get_or_insert(&mut conn, meta::ADMIN_TOKEN_HASH, &candidate_hash)?;
            if stored == candidate_hash {
                // Printed once, to the terminal that started labgate; only the hash is kept.
                println!(
                    "\nlabgate generated an admin token. It is shown only this once; store it now:\n\n    {}\n",
                    candidate.expose_secret()
                );
            }
            TokenHash::from_hex(&stored).context("the stored admin token hash is malformed")?
        }
    };
    let service_tokens = load_service_token_keys(&mut conn, &sealer)?;
    Ok(KeyMaterial {
        sealer,
        master_keys: [Some(key), previous].into_iter().flatten().collect(),
        admin_token,
        service_tokens,
    })
}

/// The master key the settings name (created on first start when none is configured), and the
/// other key of a rotation when one is configured.
pub fn configured_keys(settings: &Settings) -> anyhow::Result<(MasterKey, Option<MasterKey>)> {
    let security = &settings.security;
    let key = match &security.master_key {
        Some(encoded) => MasterKey::from_base64(encoded)
            .map_err(|e| ConfigError::invalid("security.master_key", e.to_string()))?,
        None => MasterKey::load_or_create(&security.generated_master_key_path).map_err(|e| {
            ConfigError::invalid("security.generated_master_key_path", e.to_string())
        })?,
    };
    let previous = security
        .previous_master_key
        .as_ref()
        .map(MasterKey::from_base64)
        .transpose()
        .map_err(|e| ConfigError::invalid("security.previous_master_key", e.to_string()))?;
    Ok((key, previous))
}

fn load_service_token_keys(
    conn: &mut DbConnection,
    sealer: &Sealer,
) -> anyhow::Result<ServiceTokenKeys> {
    let field = SealedColumn::MetaValue.of(meta::SERVICE_TOKEN_KEY);
    let candidate = STANDARD.encode(sealer.seal(field, &ServiceTokenKeys::generate_secret()));
    let stored = meta::get_or_insert(conn, meta::SERVICE_TOKEN_KEY, &candidate)?;
    let sealed = STANDARD
        .decode(stored)
        .context("the stored service token key is not base64")?;
    let secret = sealer
        .open(field, &sealed)
        .context("the stored service token key does not open")?;
    ServiceTokenKeys::from_secret(secret.expose_secret()).map_err(|e| anyhow::anyhow!(e))
}

fn tls_server_config(files: &TlsFiles) -> anyhow::Result<rustls::ServerConfig> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| {
            ConfigError::invalid(
                "server.tls_cert",
                format!("cannot read {}: {e}", files.cert.display()),
            )
        })?;
    if chain.is_empty() {
        return Err(
            ConfigError::invalid("server.tls_cert", "the file holds no certificate").into(),
        );
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        ConfigError::invalid(
            "server.tls_key",
            format!("cannot read {}: {e}", files.key.display()),
        )
    })?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            ConfigError::invalid(
                "server.tls_key",
                format!("does not match the certificate: {e}"),
            )
            .into()
        })
}
