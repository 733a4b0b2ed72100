//! `arcan kv …`: set, get, list, delete, history, export and run.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, q};

/// KV subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum KvCmd {
    /// Writes a secret (VALUE `-` reads standard input).
    Set {
        /// Key, e.g. `app/db`.
        key: String,
        /// Value, or `-` for standard input.
        value: String,
        /// Check-and-set: expected current version (0: must not exist).
        #[arg(long)]
        cas: Option<i64>,
    },
    /// Prints a secret's value.
    Get {
        /// Key.
        key: String,
        /// A specific version.
        #[arg(long)]
        version: Option<i64>,
        /// Print the whole record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Lists keys.
    List {
        /// Only keys starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Deletes a secret (history is kept).
    Delete {
        /// Key.
        key: String,
    },
    /// Shows a secret's versions.
    History {
        /// Key.
        key: String,
    },
    /// Prints every secret of the environment.
    Export {
        /// Output format.
        #[arg(long, value_enum, default_value = "dotenv")]
        format: ExportFormat,
    },
    /// Runs a command with the environment's secrets as environment variables.
    Run {
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
}

/// Export formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    /// `KEY="value"` lines.
    Dotenv,
    /// A JSON object.
    Json,
    /// A YAML mapping.
    Yaml,
}

/// `app/db.url` → `APP_DB_URL`.
pub fn env_var_name(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn dotenv_quote(v: &str) -> String {
    let mut out = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '$' => out.push_str("\\$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

async fn fetch_all(c: &Client, base: &str, env: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("{base}/secrets?env={}&limit=1000", q(env));
        if let Some(cur) = &cursor {
            path.push_str(&format!("&cursor={}", q(cur)));
        }
        let page = c.get(&path).await?;
        for item in page["items"].as_array().into_iter().flatten() {
            let key = item["key"].as_str().unwrap_or_default();
            let s = c
                .get(&format!("{base}/secrets/{key}?env={}", q(env)))
                .await?;
            out.insert(
                key.to_owned(),
                s["value"].as_str().unwrap_or_default().to_owned(),
            );
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            return Ok(out);
        }
    }
}

/// Runs a KV subcommand against `realm` and `env`.
pub async fn run(c: &Client, realm: &str, env: &str, cmd: KvCmd) -> anyhow::Result<i32> {
    let base = format!("/api/v1/realms/{}", q(realm));
    let envq = format!("env={}", q(env));
    match cmd {
        KvCmd::Set { key, value, cas } => {
            let value = if value == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s
            } else {
                value
            };
            let mut body = json!({ "value": value });
            if let Some(cas) = cas {
                body["cas"] = json!(cas);
            }
            let r = c
                .call(
                    Method::PUT,
                    &format!("{base}/secrets/{key}?{envq}"),
                    Some(&body),
                )
                .await?;
            println!("{key} ({env}) version {}", r["version"]);
        }
        KvCmd::Get { key, version, json } => {
            let mut path = format!("{base}/secrets/{key}?{envq}");
            if let Some(v) = version {
                path.push_str(&format!("&version={v}"));
            }
            let r = c.get(&path).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("{}", r["value"].as_str().unwrap_or_default());
            }
        }
        KvCmd::List { prefix } => {
            let mut cursor: Option<String> = None;
            loop {
                let mut path = format!("{base}/secrets?{envq}&prefix={}", q(&prefix));
                if let Some(cur) = &cursor {
                    path.push_str(&format!("&cursor={}", q(cur)));
                }
                let page = c.get(&path).await?;
                for item in page["items"].as_array().into_iter().flatten() {
                    println!(
                        "{}\tv{}\t{}",
                        item["key"].as_str().unwrap_or_default(),
                        item["version"],
                        item["updated_at"].as_str().unwrap_or_default()
                    );
                }
                cursor = page["next_cursor"].as_str().map(str::to_owned);
                if cursor.is_none() {
                    break;
                }
            }
        }
        KvCmd::Delete { key } => {
            c.call(
                Method::DELETE,
                &format!("{base}/secrets/{key}?{envq}"),
                None,
            )
            .await?;
            println!("deleted {key} ({env})");
        }
        KvCmd::History { key } => {
            let r = c.get(&format!("{base}/metadata/{key}?{envq}")).await?;
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        KvCmd::Export { format } => {
            let all = fetch_all(c, &base, env).await?;
            match format {
                ExportFormat::Dotenv => {
                    for (k, v) in &all {
                        println!("{}={}", env_var_name(k), dotenv_quote(v));
                    }
                }
                ExportFormat::Json => println!("{}", serde_json::to_string_pretty(&all)?),
                ExportFormat::Yaml => print!("{}", serde_norway::to_string(&all)?),
            }
        }
        KvCmd::Run { command } => {
            let all = fetch_all(c, &base, env).await?;
            let Some((prog, args)) = command.split_first() else {
                bail!("no command given")
            };
            let status = tokio::process::Command::new(prog)
                .args(args)
                .envs(all.iter().map(|(k, v)| (env_var_name(k), v)))
                .status()
                .await
                .with_context(|| format!("running {prog}"))?;
            return Ok(status.code().unwrap_or(1));
        }
    }
    Ok(0)
}

/// Prints a JSON value.
pub fn print(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn env_names_and_quoting() {
        assert_eq!(super::env_var_name("app/db.url"), "APP_DB_URL");
        assert_eq!(super::dotenv_quote("a\"b$c\n"), "\"a\\\"b\\$c\\n\"");
    }
}
