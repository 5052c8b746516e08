//! Where the secrets keys come from: `EVENTGATE_SECRETS_KEY`, a key file, or, in the
//! zero-config mode only, a key generated once beside the private cluster (as its
//! database password is). With `DATABASE_URL` and no key the server refuses to start: a
//! generated key would be lost with the machine, and every stored secret with it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::keyring::{Keyring, SecretsError};
use crate::config::{DatabaseArgs, Secret, SecretsArgs};

/// The zero-config mode's key file, inside its data directory.
pub const ZERO_CONFIG_KEY_FILE: &str = "secrets.key";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "no secrets key: with DATABASE_URL, set EVENTGATE_SECRETS_KEY (or \
         EVENTGATE_SECRETS_KEY_FILE) to a key made with `openssl rand -base64 32`, kept \
         outside the database (docs/SECURITY.md)"
    )]
    Missing,
    #[error("cannot read the secrets key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the secrets key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the secrets key file {0} holds no key")]
    EmptyFile(PathBuf),
    #[error(transparent)]
    Key(#[from] SecretsError),
}

/// Fills `args.secrets_key` from its file, or in the zero-config mode from the generated
/// key (made on first start), so that [`keyring`] finds the keys there.
pub fn resolve(args: &mut SecretsArgs, database: &DatabaseArgs) -> Result<(), LoadError> {
    if !args.secrets_key.is_empty() {
        return Ok(());
    }
    let keys = match (&args.secrets_key_file, &database.database_url) {
        (Some(path), _) => read_keys(path)?,
        (None, None) => zero_config_key(&database.data_dir)?,
        (None, Some(_)) => return Err(LoadError::Missing),
    };
    args.secrets_key = keys.into_iter().map(Secret::new).collect();
    Ok(())
}

/// The keyring of configured keys; checks each is a valid key.
pub fn keyring(args: &SecretsArgs) -> Result<Keyring, LoadError> {
    if args.secrets_key.is_empty() {
        return Err(LoadError::Missing);
    }
    Ok(Keyring::from_base64(
        args.secrets_key.iter().map(Secret::expose),
    )?)
}

fn read_keys(path: &Path) -> Result<Vec<String>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if keys.is_empty() {
        return Err(LoadError::EmptyFile(path.to_path_buf()));
    }
    Ok(keys)
}

fn zero_config_key(data_dir: &Path) -> Result<Vec<String>, LoadError> {
    let path = data_dir.join(ZERO_CONFIG_KEY_FILE);
    if path.exists() {
        return read_keys(&path);
    }
    let write_err = |source| LoadError::Write {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(data_dir).map_err(write_err)?;
    let key = Keyring::generate_base64()?;
    // create_new: two servers starting on one data directory cannot both write a key.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(write_err)?;
    file.write_all(format!("{key}\n").as_bytes())
        .map_err(write_err)?;
    tracing::info!(path = %path.display(), "generated the zero-config secrets key");
    Ok(vec![key])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(url: Option<&str>, data_dir: &Path) -> DatabaseArgs {
        DatabaseArgs {
            database_url: url.map(Secret::new),
            data_dir: data_dir.to_path_buf(),
            db_max_connections: 2,
            db_statement_timeout_secs: 0,
            db_idle_in_transaction_timeout_secs: 0,
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("eventgate-{name}-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_database_url_without_a_key_is_refused() {
        let dir = temp_dir("no-key");
        let mut args = SecretsArgs::default();
        let refused = resolve(&mut args, &database(Some("postgres://db/x"), &dir));
        assert!(matches!(refused, Err(LoadError::Missing)));
        assert!(
            !dir.join(ZERO_CONFIG_KEY_FILE).exists(),
            "nothing generated"
        );
    }

    #[test]
    fn the_zero_config_key_is_generated_once_and_private() {
        let dir = temp_dir("zero-config").join("data");
        let mut first = SecretsArgs::default();
        resolve(&mut first, &database(None, &dir)).unwrap();
        let mut second = SecretsArgs::default();
        resolve(&mut second, &database(None, &dir)).unwrap();
        assert_eq!(
            first.secrets_key, second.secrets_key,
            "the same key on restart"
        );
        keyring(&first).unwrap();
        let mode = std::fs::metadata(dir.join(ZERO_CONFIG_KEY_FILE))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }

    #[test]
    fn a_key_file_lists_keys_newest_first() {
        let dir = temp_dir("key-file");
        let (new, old) = (
            Keyring::generate_base64().unwrap(),
            Keyring::generate_base64().unwrap(),
        );
        let path = dir.join("keys");
        std::fs::write(&path, format!("# rotated today\n{new}\n\n{old}\n")).unwrap();
        let mut args = SecretsArgs {
            secrets_key: Vec::new(),
            secrets_key_file: Some(path),
        };
        resolve(&mut args, &database(Some("postgres://db/x"), &dir)).unwrap();
        assert_eq!(args.secrets_key, vec![Secret::new(new), Secret::new(old)]);
        let ring = keyring(&args).unwrap();
        assert_eq!(
            ring.newest_id(),
            Keyring::from_base64([args.secrets_key[0].expose()])
                .unwrap()
                .newest_id()
        );
    }
}
