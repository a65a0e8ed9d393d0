//! `labgate credentials`: prints a GitLab token for a subject, in the form a script needs.

use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use super::client::{LabgateClient, ToolError};

#[derive(Args)]
pub(super) struct CredentialsArgs {
    /// The GitLab instance, by its name in labgate.
    #[arg(long)]
    instance: String,
    /// The user, as the service knows them (default: $LABGATE_SUBJECT).
    #[arg(long)]
    subject: Option<String>,
    /// Scopes the token must carry (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    scopes: Vec<String>,
    /// Seconds the token must stay valid: at most 3600, and at most what the instance's token
    /// lifetime allows (labgate answers 422 naming that most); under 60 counts as 60.
    #[arg(long)]
    min_valid_for: Option<u32>,
    #[arg(long, value_enum, default_value_t = Format::Token)]
    format: Format,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// The token alone.
    Token,
    /// labgate's whole answer.
    Json,
    /// Shell exports, for `eval`: GITLAB_TOKEN, GITLAB_TOKEN_EXPIRES_AT, GITLAB_USER, GITLAB_URL.
    Env,
    /// A line for git's credential store: https://oauth2:TOKEN@host/path.
    GitCredentials,
}

pub(super) async fn run(args: CredentialsArgs) -> Result<(), ToolError> {
    let client = LabgateClient::from_env()?;
    let mut request = json!({"instance": args.instance, "subject": client.subject(args.subject)?});
    if !args.scopes.is_empty() {
        request["scopes"] = json!(args.scopes);
    }
    if let Some(seconds) = args.min_valid_for {
        request["min_valid_for"] = json!(seconds);
    }
    let answer = client.credentials(request).await?;
    print!("{}", render(&answer, args.format)?);
    Ok(())
}

fn render(answer: &Value, format: Format) -> Result<String, ToolError> {
    let field = |value: &Value| {
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ToolError("labgate's answer is incomplete".into()))
    };
    let token = field(&answer["access_token"])?;
    Ok(match format {
        Format::Token => format!("{token}\n"),
        Format::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(answer).unwrap_or_default()
        ),
        Format::Env => format!(
            "export GITLAB_TOKEN={}\nexport GITLAB_TOKEN_EXPIRES_AT={}\nexport GITLAB_USER={}\n\
             export GITLAB_URL={}\n",
            shell_quote(&token),
            shell_quote(&field(&answer["expires_at"])?),
            shell_quote(&field(&answer["gitlab"]["username"])?),
            shell_quote(&field(&answer["instance"]["base_url"])?),
        ),
        Format::GitCredentials => {
            let base = url::Url::parse(&field(&answer["instance"]["base_url"])?)
                .map_err(|e| ToolError(format!("labgate's base_url is not a URL: {e}")))?;
            let host = base.host_str().unwrap_or_default();
            let port = base.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://oauth2:{token}@{host}{port}{}\n",
                base.scheme(),
                base.path().trim_end_matches('/')
            )
        }
    })
}

fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}
