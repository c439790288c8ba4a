//! Reading `auth.json` and `images.json`: everything is checked before any network
//! traffic, and every problem is reported with the file, the line and the key it concerns.
//! Nothing here talks to the network.

pub mod auth;
pub mod cloud;
pub mod images;
pub mod machine;
mod pair;
pub use pair::check_defaults;
mod source;
pub mod tags;
mod yaml;

use std::fmt;
use std::path::{Path, PathBuf};

pub use auth::{AuthConfig, AuthEntry, Secret};
pub use cloud::{AwsKeys, CloudKeys};
pub use images::{Defaults, Rule, TagSelection};
pub use machine::{CredentialSource, Credentials, Found, MachineCredentials};
pub use tags::{TagFilters, TagRegex};

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    /// The key (auth.json entry or images.json rule source) the problem concerns.
    pub key: Option<String>,
    pub message: String,
}

impl ConfigError {
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            line: None,
            key: None,
            message: message.into(),
        }
    }

    pub fn at(file: &Path, line: usize, key: &str, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            line: Some(line),
            key: Some(key.to_string()),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key:?}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in the configuration, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Where to read the files and how to fill empty targets.
#[derive(Debug, Clone)]
pub struct ConfigPaths {
    /// `None` = the default `auth.json`, which may be absent (anonymous everywhere).
    pub auth: Option<PathBuf>,
    pub images: PathBuf,
    /// `--config`: one file with top-level `auth` and `images`; replaces both paths.
    pub combined: Option<PathBuf>,
    /// Read the machine's credentials (Docker config, containers auth, DOCKER_AUTH_CONFIG)
    /// where auth.json has none (`--no-docker-config` turns this off).
    pub machine_credentials: bool,
}

/// Both files, read and checked.
#[derive(Debug)]
pub struct Config {
    pub auth: AuthConfig,
    /// Empty when `machine_credentials` is off.
    pub machine: MachineCredentials,
    pub rules: Vec<Rule>,
}

impl Config {
    /// Reads and checks both files; all errors of both are returned together.
    pub fn load(
        paths: &ConfigPaths,
        defaults: &Defaults,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        let (auth, rules) = match &paths.combined {
            Some(path) => load_combined(path, defaults, env),
            None => (
                Self::load_auth(paths, env),
                images::load(&paths.images, defaults, env),
            ),
        };
        Self::assemble(paths, env, auth, rules)
    }

    /// Credentials only (auth.json, the machine's), no rules file: for `import` of a
    /// bundle that records its rules.
    pub fn load_credentials(
        paths: &ConfigPaths,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        Self::assemble(paths, env, Self::load_auth(paths, env), Ok(Vec::new()))
    }

    /// The files read, with the machine's credentials; every error of all of them.
    fn assemble(
        paths: &ConfigPaths,
        env: &dyn Fn(&str) -> Option<String>,
        auth: Loaded<AuthConfig>,
        rules: Loaded<Vec<Rule>>,
    ) -> Result<Config, ConfigErrors> {
        let mut errors = Vec::new();
        let auth = auth.unwrap_or_else(|mut e| {
            errors.append(&mut e.0);
            AuthConfig::default()
        });
        let machine = if paths.machine_credentials {
            MachineCredentials::load(env).unwrap_or_else(|mut e| {
                errors.append(&mut e.0);
                MachineCredentials::default()
            })
        } else {
            MachineCredentials::default()
        };
        let rules = rules.unwrap_or_else(|mut e| {
            errors.append(&mut e.0);
            Vec::new()
        });
        if errors.is_empty() {
            Ok(Config {
                auth,
                machine,
                rules,
            })
        } else {
            Err(ConfigErrors(errors))
        }
    }

    fn load_auth(
        paths: &ConfigPaths,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<AuthConfig, ConfigErrors> {
        match &paths.auth {
            Some(path) => AuthConfig::load(path, env),
            None if Path::new(auth::DEFAULT_PATH).exists() => {
                AuthConfig::load(Path::new(auth::DEFAULT_PATH), env)
            }
            None => Ok(AuthConfig::default()),
        }
    }
}

type Loaded<T> = Result<T, ConfigErrors>;

/// image-syncer's single file: `{"auth": {…}, "images": {…}}` (JSON or YAML). `auth` may
/// be left out (anonymous access); `images` may not.
fn load_combined(
    path: &Path,
    defaults: &Defaults,
    env: &dyn Fn(&str) -> Option<String>,
) -> (Loaded<AuthConfig>, Loaded<Vec<Rule>>) {
    let failed = |e: ConfigErrors| (Err(e.clone()), Err(ConfigErrors(Vec::new())));
    let file = match source::SourceFile::read(path).and_then(|f| f.entries(path)) {
        Ok(entries) => entries,
        Err(e) => return failed(e),
    };
    let mut problems = Vec::new();
    let mut auth = None;
    let mut images = None;
    for entry in file {
        let slot = match entry.key.as_str() {
            "auth" => &mut auth,
            "images" => &mut images,
            other => {
                problems.push(ConfigError::at(
                    path,
                    entry.line,
                    other,
                    "unknown top-level key; a --config file holds \"auth\" and \"images\"",
                ));
                continue;
            }
        };
        match source::map_entries(&entry.value) {
            Some(entries) if slot.is_none() => *slot = Some(entries),
            Some(_) => problems.push(ConfigError::at(
                path,
                entry.line,
                &entry.key,
                "appears twice; merge both into one object",
            )),
            None => problems.push(ConfigError::at(
                path,
                entry.line,
                &entry.key,
                format!("must be an object, not {}", entry.value.type_name()),
            )),
        }
    }
    if !problems.is_empty() {
        return failed(ConfigErrors(problems));
    }
    let Some(images) = images else {
        return failed(ConfigErrors(vec![ConfigError::file(
            path,
            "has no \"images\" object; a --config file holds \"auth\" and \"images\"",
        )]));
    };
    let auth = AuthConfig::from_entries(path, auth.unwrap_or_default(), env);
    (auth, images::from_entries(path, images, defaults, env))
}
