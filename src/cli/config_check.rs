//! `labgate config check`: loads the settings as `serve` would (warnings about unknown keys
//! included) and prints them in effect, secrets masked; exits non-zero naming a bad setting.

pub(super) fn run() -> anyhow::Result<()> {
    let settings = crate::config::load()?;
    print!("{}", settings.effective());
    Ok(())
}
