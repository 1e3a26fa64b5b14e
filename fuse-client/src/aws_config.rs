//! Endpoint, credentials and region from where the AWS CLI reads them:
//! command-line flags, then the environment, then the profile in
//! `~/.aws/credentials` and `~/.aws/config` (or `--credentials-file` /
//! `$AWS_SHARED_CREDENTIALS_FILE` and `$AWS_CONFIG_FILE`).

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

/// The `key = value` pairs of section `section` of an INI file.
fn section(text: &str, wanted: &str) -> HashMap<String, String> {
    let mut current = String::new();
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim().to_string();
            continue;
        }
        if current == wanted {
            if let Some((k, v)) = line.split_once('=') {
                out.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
    }
    out
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn aws_file(env: &str, name: &str) -> PathBuf {
    match std::env::var_os(env) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".aws")
            .join(name),
    }
}

/// A credentials file named on the command line (or in mount options):
/// it must exist and must not be readable by others, as s3fs insists too.
fn read_named(path: &std::path::Path) -> Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).with_context(|| format!("credentials file {}", path.display()))?;
    if meta.permissions().mode() & 0o007 != 0 {
        bail!(
            "credentials file {} is readable by others; chmod o-rwx it",
            path.display()
        );
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Fills what the flags (already merged with the environment by clap) left
/// open from the profile's files; `credentials_file` replaces
/// ~/.aws/credentials.
pub fn resolve(
    credentials_file: Option<&std::path::Path>,
    profile: &str,
    endpoint: Option<String>,
    access_key: Option<String>,
    secret_key: Option<String>,
    region: Option<String>,
) -> Result<Resolved> {
    let credentials_text = match credentials_file {
        Some(path) => read_named(path)?,
        None => read(aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials")),
    };
    let credentials = section(&credentials_text, profile);
    let config_section = if profile == "default" {
        "default".to_string()
    } else {
        format!("profile {profile}")
    };
    let config = section(&read(aws_file("AWS_CONFIG_FILE", "config")), &config_section);
    let from_files = |k: &str| credentials.get(k).or_else(|| config.get(k)).cloned();
    let region = region
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .or_else(|| from_files("region"))
        .unwrap_or_else(|| "us-east-1".into());
    Ok(Resolved {
        endpoint: endpoint.or_else(|| from_files("endpoint_url")).context(
            "no endpoint: pass --endpoint or set AWS_ENDPOINT_URL or endpoint_url in ~/.aws/config",
        )?,
        access_key: access_key
            .or_else(|| from_files("aws_access_key_id"))
            .context("no access key: pass --access-key or set AWS_ACCESS_KEY_ID or ~/.aws/credentials")?,
        secret_key: secret_key
            .or_else(|| from_files("aws_secret_access_key"))
            .context("no secret key: pass --secret-key or set AWS_SECRET_ACCESS_KEY or ~/.aws/credentials")?,
        region,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_profile_section() {
        let text =
            "[default]\naws_access_key_id = A\n\n[profile other]\nregion=eu\n# c\nendpoint_url = http://x\n";
        assert_eq!(section(text, "default")["aws_access_key_id"], "A");
        assert_eq!(section(text, "profile other")["endpoint_url"], "http://x");
        assert!(section(text, "missing").is_empty());
    }
}
