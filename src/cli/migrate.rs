pub(super) async fn run() -> anyhow::Result<()> {
    let settings = crate::config::load()?;
    tokio::task::spawn_blocking(move || crate::startup::open_database(&settings)).await??;
    tracing::info!("the database schema is up to date");
    Ok(())
}
