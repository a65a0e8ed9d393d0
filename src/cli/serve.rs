use crate::startup::Application;

pub(super) async fn run() -> anyhow::Result<()> {
    let settings = crate::config::load()?;
    Application::build(settings).await?.run().await?;
    Ok(())
}
