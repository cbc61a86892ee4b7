//! Finding, reading and validating berth.toml into a [`Config`].

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use toml::Spanned;

use super::ConfigError;
use super::error::Site;
use super::model::{
    ComposeCatalog, ComposeConfig, ComposeSettings, Config, DEFAULT_PORT_NAME,
    DEFAULT_WORKTREE_DIR, DatabaseConfig, DatabaseKind, EnvFileConfig, PerInstanceConfig, PortBase,
    PortStrategy, ReadyConfig, ServiceConfig, WorktreeConfig,
};
use super::policy::{HttpStatus, LogLimits, RestartPolicy};
use super::raw::{
    RawCommand, RawConfig, RawDatabase, RawPort, RawReady, RawService, RawSize, RawStatus,
};
use super::size::parse_size;
use super::template::{CommandTemplate, Placeholder, Template, TemplateError, Var};
use crate::identity::sanitize;
use crate::input::{self, InputError, MAX_TEXT_BYTES};

pub const CONFIG_FILE_NAME: &str = "berth.toml";
const DEFAULT_STRIDE: u32 = 100;
const DEFAULT_AUTO_RANGE: (u16, u16) = (20000, 29999);
const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(5);
/// The smallest `[logs] max_size`: room for several of the longest lines a log holds.
const MIN_LOG_SIZE: u64 = 64 * 1024;
/// The most `[logs] max_files`.
const MAX_LOG_FILES: i64 = 100;

/// The Compose file names Compose itself looks for, in its order.
pub const COMPOSE_FILE_NAMES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// The nearest directory at or above `start` holding berth.toml or a Compose file,
/// canonicalised (so a symlinked project directory has one identity).
pub fn find_project_root(start: &Path) -> Result<PathBuf, ConfigError> {
    let canonical = fs_err::canonicalize(start).map_err(|source| ConfigError::Read {
        path: start.to_path_buf(),
        source,
    })?;
    canonical
        .ancestors()
        .find(|dir| exists(&dir.join(CONFIG_FILE_NAME)) || default_compose_file(dir).is_some())
        .map(Path::to_path_buf)
        .ok_or(ConfigError::NotFound { dir: canonical })
}

/// Resolves the project's Compose files into the services berth plans; called by
/// [`load`] only when the project has Compose files. Its error type `E` is the caller's
/// (the Compose module's), so configuration knows nothing of Compose: [`load`] returns
/// the same `E`, into which its own [`ConfigError`]s convert.
pub type ComposeResolver<'a, E> =
    &'a mut dyn FnMut(&ComposeSettings, &str) -> Result<ComposeCatalog, E>;

/// Reads and validates `<root>/berth.toml` (or works from the Compose file alone).
pub fn load<E: From<ConfigError>>(
    root: &Path,
    resolver: ComposeResolver<'_, E>,
) -> Result<Config, E> {
    let toml_path = root.join(CONFIG_FILE_NAME);
    // Whatever stands there is read as the configuration, so a FIFO or a device is
    // refused by name rather than passed over for a Compose file.
    let (path, text) = if exists(&toml_path) {
        let bytes = input::read_bytes(&toml_path, MAX_TEXT_BYTES).map_err(ConfigError::from)?;
        let text = String::from_utf8(bytes).map_err(|error| not_utf8(&toml_path, &error))?;
        (toml_path, text)
    } else if let Some(compose) = default_compose_file(root) {
        (compose, String::new())
    } else {
        return Err(ConfigError::NotFound {
            dir: root.to_path_buf(),
        }
        .into());
    };
    Loader {
        path: &path,
        text: &text,
        root,
    }
    .load(root, resolver)
}

/// Whether anything (even a dangling symlink) stands at `path`.
fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// berth.toml that is not UTF-8: located at the first byte that is not.
fn not_utf8(path: &Path, error: &std::string::FromUtf8Error) -> ConfigError {
    let bytes = error.as_bytes();
    let offset = error.utf8_error().valid_up_to();
    let (line, column) = input::position(bytes, offset);
    let line_start = bytes[..offset]
        .iter()
        .rposition(|byte| *byte == b'\n')
        .map_or(0, |index| index + 1);
    let line_end = bytes[line_start..]
        .iter()
        .position(|byte| *byte == b'\n')
        .map_or(bytes.len(), |end| line_start + end);
    let source_line = String::from_utf8_lossy(&bytes[line_start..line_end]);
    let source_line = source_line.strip_suffix('\r').unwrap_or(&source_line);
    // The line is valid UTF-8 up to the bad byte, so the replacement character that
    // stands for that byte starts at the same offset.
    let at = (offset - line_start).min(source_line.len());
    let width = source_line[at..].chars().next().map_or(0, char::len_utf8);
    Site {
        path: path.to_path_buf(),
        line,
        column,
        source_line: source_line.to_string(),
        span: at..at + width,
    }
    .error(
        "this byte is not valid UTF-8: berth.toml must be UTF-8 text",
        Some("save berth.toml as UTF-8".to_string()),
    )
}

/// The Compose file Compose would read in `dir` without `-f`.
fn default_compose_file(dir: &Path) -> Option<PathBuf> {
    COMPOSE_FILE_NAMES
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
}

struct Loader<'a> {
    path: &'a Path,
    text: &'a str,
    root: &'a Path,
}

impl Loader<'_> {
    fn error(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        self.site(span).error(message, None)
    }

    /// Where `span` starts: line and column, the line itself, and the part of `span`
    /// that lies on that line.
    fn site(&self, span: Range<usize>) -> Site {
        let start = self.char_boundary(span.start);
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |index| index + 1);
        let column = self.text[line_start..start].chars().count() + 1;
        let mut line_end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |end| start + end);
        // A CRLF line ends before its `\r`.
        if line_end > start && self.text[..line_end].ends_with('\r') {
            line_end -= 1;
        }
        let end = self.char_boundary(span.end).clamp(start, line_end);
        Site {
            path: self.path.to_path_buf(),
            line,
            column,
            source_line: self.text[line_start..line_end].to_string(),
            span: start - line_start..end - line_start,
        }
    }

    /// The key whose value starts at `start`, when the value stands on the key's line
    /// (`port = [1]` gives `port`), for messages about a value of the wrong type.
    fn key_before(&self, start: usize) -> Option<String> {
        let start = self.char_boundary(start);
        let line_start = self.text[..start].rfind('\n').map_or(0, |index| index + 1);
        let before = self.text[line_start..start].trim_end();
        let before = before.strip_suffix('=')?;
        let key = before
            .rsplit(['{', ','])
            .next()
            .unwrap_or(before)
            .trim()
            .trim_matches(['"', '\'']);
        let plain = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        plain.then(|| key.to_string())
    }

    /// A TOML or type error in plain words, naming the key where it can.
    fn parse_error(&self, error: &toml::de::Error) -> ConfigError {
        let span = error.span().unwrap_or(0..0);
        let message = plain_words(error.message().trim(), self.key_before(span.start));
        self.error(span, message)
    }

    /// A string that will be part of a command, a path or a variable: a NUL byte cannot
    /// be (the kernel would refuse it at start), so it is refused here, where it is
    /// written (`\u0000`) when the source shows it.
    fn no_nul(&self, span: &Range<usize>, value: &str) -> Result<(), ConfigError> {
        if !value.contains('\0') {
            return Ok(());
        }
        let source = &self.text[self.char_boundary(span.start)..self.char_boundary(span.end)];
        let at = ["\\u0000", "\\U00000000"]
            .iter()
            .filter_map(|escape| source.find(escape))
            .min()
            .map_or(span.start, |offset| span.start + offset);
        Err(self.error(
            at..span.end,
            "a NUL character (`\\u0000`) cannot be part of a command, path or variable",
        ))
    }

    /// The nearest char boundary at or before `index`, within the text.
    fn char_boundary(&self, index: usize) -> usize {
        let mut index = index.min(self.text.len());
        while !self.text.is_char_boundary(index) {
            index -= 1;
        }
        index
    }

    /// An error inside a string value. `offset` counts bytes of the decoded string, which
    /// only matches the source when nothing before it was written as an escape or after
    /// a `"""` line break; so the error points at the first source occurrence of
    /// `needle` (the offending placeholder) when given, else at that offset, clamped.
    fn template_error_at(
        &self,
        span: &Range<usize>,
        error: &TemplateError,
        needle: Option<&str>,
    ) -> ConfigError {
        let source = &self.text[self.char_boundary(span.start)..self.char_boundary(span.end)];
        // The needle is a placeholder's inside: point at the `{{` that opens it.
        let found = needle
            .and_then(|needle| source.find(needle))
            .and_then(|inside| source[..inside].rfind("{{"));
        let start = match found {
            Some(found) => span.start + found,
            None => (span.start + 1 + error.offset).min(span.end),
        };
        self.error(start..span.end, error.message.clone())
    }

    /// A syntax error inside the string `decoded` (the value TOML read): located after
    /// the source text of what precedes it, when the source holds that text verbatim,
    /// else at the string's start (escapes make byte offsets differ).
    fn template_error(
        &self,
        span: &Range<usize>,
        error: &TemplateError,
        decoded: &str,
    ) -> ConfigError {
        let mut offset = error.offset.min(decoded.len());
        while !decoded.is_char_boundary(offset) {
            offset -= 1;
        }
        let prefix = &decoded[..offset];
        let source = &self.text[self.char_boundary(span.start)..self.char_boundary(span.end)];
        // Where the value starts: after the quote, and after the line break that TOML
        // drops right after a `"""` or `'''`.
        let opening = [
            "\"\"\"\r\n",
            "\"\"\"\n",
            "'''\r\n",
            "'''\n",
            "\"\"\"",
            "'''",
            "\"",
            "'",
        ]
        .iter()
        .find(|opening| source.starts_with(**opening));
        // In a basic (double-quoted) string a backslash starts an escape, so the source
        // is verbatim only without one.
        let verbatim = |opening: &str| {
            source[opening.len()..].starts_with(prefix)
                && (opening.starts_with('\'') || !prefix.contains('\\'))
        };
        let start = match opening {
            Some(opening) if verbatim(opening) => span.start + opening.len() + prefix.len(),
            _ => span.start,
        };
        self.error(start..span.end, error.message.clone())
    }

    fn load<E: From<ConfigError>>(
        &self,
        root: &Path,
        resolver: ComposeResolver<'_, E>,
    ) -> Result<Config, E> {
        let raw: RawConfig = toml::from_str(self.text).map_err(|error| self.parse_error(&error))?;

        let project = match raw
            .project
            .as_ref()
            .and_then(|project| project.get_ref().name.as_ref())
        {
            Some(name) => {
                let value = name.get_ref();
                if value.is_empty() || sanitize(value) != *value {
                    return Err(self
                        .error(
                            name.span(),
                            format!(
                                "project name `{value}` must be lowercase letters, digits and `-`"
                            ),
                        )
                        .into());
                }
                value.clone()
            }
            None => {
                // Every worktree of a repository is the same project (its snapshots, its
                // indexes): a linked worktree is named after the main work tree's twin.
                let twin = crate::git::main_worktree_twin(root);
                let directory = twin
                    .as_deref()
                    .unwrap_or(root)
                    .file_name()
                    .map(|name| name.to_string_lossy())
                    .unwrap_or_default();
                let name = sanitize(&directory);
                if name.is_empty() {
                    "project".to_string()
                } else {
                    name
                }
            }
        };

        let (stride, auto_range, port_strategy) = self.ports_section(&raw)?;
        let worktree = self.worktree_section(&raw)?;
        let logs = self.logs_section(&raw)?;
        let compose = match self.compose_settings(&raw, root)? {
            Some(settings) => {
                let catalog = resolver(&settings, &project)?;
                Some(ComposeConfig {
                    services: self.compose_services(&raw, catalog)?,
                    settings,
                })
            }
            None => None,
        };
        let services = self.services(&raw, compose.as_ref())?;
        let env_files = self.env_files(&raw, root)?;
        let (env, env_file) = self.project_env(&raw)?;
        let mut databases = IndexMap::new();
        for (name, service) in &raw.services {
            if let Some(database) = &service.get_ref().database {
                databases.insert(name.get_ref().clone(), self.database(database)?);
            }
        }
        let mut config = Config {
            path: self.path.to_path_buf(),
            root: root.to_path_buf(),
            project,
            stride,
            port_strategy,
            worktree,
            router_default: None,
            auto_range,
            logs,
            services,
            compose,
            env_files,
            env,
            env_file,
            databases,
            external_ports: IndexMap::new(),
            router: crate::router::RouterAddress {
                port: crate::router::DEFAULT_PORT,
                https: false,
            },
            uses_shared: IndexMap::new(),
            shared_instance: None,
        };
        self.check_names(&raw, &config)?;
        self.check_shared(&raw, &config)?;
        self.check_env_file_names(&raw, &config)?;
        self.check_env_file_targets(&config)?;
        self.check_dependencies(&raw, &config)?;
        self.check_duplicate_ports(&raw, &config)?;
        config.router_default = self.router_default(&raw, &config)?;
        Ok(config)
    }

    /// `[router] default`: a service (process or compose) with a port.
    fn router_default(
        &self,
        raw: &RawConfig,
        config: &Config,
    ) -> Result<Option<String>, ConfigError> {
        let Some(default) = raw
            .router
            .as_ref()
            .and_then(|router| router.get_ref().default.as_ref())
        else {
            return Ok(None);
        };
        let name = default.get_ref();
        match config.ports_of(name) {
            Some(ports) if !ports.is_empty() => Ok(Some(name.clone())),
            Some(_) => Err(self.error(
                default.span(),
                format!("`default` names `{name}`, which has no port for the router to reach"),
            )),
            None => Err(self.error(
                default.span(),
                format!("`default` names `{name}`, which is not a service of this project"),
            )),
        }
    }

    /// `[[env_files]]`: each source must exist and read as dotenv, each `set` key must be
    /// a valid variable name.
    fn env_files(&self, raw: &RawConfig, root: &Path) -> Result<Vec<EnvFileConfig>, ConfigError> {
        let mut files = Vec::new();
        for entry in &raw.env_files {
            let entry = entry.get_ref();
            let source = root.join(entry.source.get_ref());
            let text = input::read_text(&source, MAX_TEXT_BYTES).map_err(|error| {
                let message = match &error {
                    InputError::Open { path, error } => {
                        format!("cannot read env file `{}`: {error}", path.display())
                    }
                    other => format!("cannot read env file: {other}"),
                };
                self.site(entry.source.span()).error(message, error.hint())
            })?;
            let document = crate::dotenv::parse(&text).map_err(|error| {
                self.error(
                    entry.source.span(),
                    format!("`{}` is not a valid dotenv file: {error}", source.display()),
                )
            })?;
            let mut set = IndexMap::new();
            for (key, value) in &entry.set {
                if !crate::dotenv::is_valid_key(key.get_ref()) {
                    return Err(self.error(
                        key.span(),
                        format!("`{}` is not a valid variable name", key.get_ref()),
                    ));
                }
                set.insert(key.get_ref().clone(), self.template(value)?);
            }
            files.push(EnvFileConfig {
                source,
                document,
                target: self.template(&entry.target)?,
                target_site: self.site(entry.target.span()),
                set,
                services: entry.services.iter().map(|s| s.get_ref().clone()).collect(),
            });
        }
        Ok(files)
    }

    /// Every placeholder, located by the span of the string holding it, must name a
    /// service and port that exist.
    fn check_references(
        &self,
        located: Vec<(Range<usize>, Vec<&Placeholder>)>,
        config: &Config,
    ) -> Result<(), ConfigError> {
        for (span, placeholders) in located {
            for placeholder in placeholders {
                if let Some(message) = unknown_reference(&placeholder.var, config) {
                    let error = TemplateError {
                        offset: placeholder.offset,
                        message,
                    };
                    return Err(self.template_error_at(&span, &error, Some(&placeholder.text)));
                }
            }
        }
        Ok(())
    }

    /// Templates and service names in `[[env_files]]` must name what exists.
    fn check_env_file_names(&self, raw: &RawConfig, config: &Config) -> Result<(), ConfigError> {
        for (entry, file) in raw.env_files.iter().zip(&config.env_files) {
            let entry = entry.get_ref();
            let mut located: Vec<(Range<usize>, Vec<&Placeholder>)> =
                vec![(entry.target.span(), file.target.placeholders().collect())];
            for (key, value) in &entry.set {
                located.push((
                    value.span(),
                    file.set[key.get_ref()].placeholders().collect(),
                ));
            }
            self.check_references(located, config)?;
            for service in &entry.services {
                if !config.has_service(service.get_ref()) {
                    return Err(self.error(
                        service.span(),
                        format!("`{}` is not a service", service.get_ref()),
                    ));
                }
            }
        }
        Ok(())
    }

    /// A target without templates is checked now, as far as it can be without the
    /// ledger's record of what berth wrote; every target is checked again once rendered.
    fn check_env_file_targets(&self, config: &Config) -> Result<(), ConfigError> {
        let protected = super::protected_files(config);
        for file in &config.env_files {
            if file.target.placeholders().next().is_some() {
                continue;
            }
            let target = file.target.render(&|_| String::new());
            super::check_target(&config.root, Path::new(&target), &protected, None)
                .map_err(|problem| file.target_site.error(problem.message, Some(problem.hint)))?;
        }
        Ok(())
    }

    /// `[compose]`, or the Compose file found in the root; `None` for a project
    /// without Compose.
    fn compose_settings(
        &self,
        raw: &RawConfig,
        root: &Path,
    ) -> Result<Option<ComposeSettings>, ConfigError> {
        let section = raw.compose.as_ref().map(Spanned::get_ref);
        let files = match section.and_then(|compose| compose.files.as_ref()) {
            Some(files) => {
                if files.get_ref().is_empty() {
                    return Err(self.error(
                        files.span(),
                        "`files` is empty; remove it to use the default Compose file",
                    ));
                }
                let mut paths = Vec::new();
                for file in files.get_ref() {
                    let path = root.join(file.get_ref());
                    let canonical = fs_err::canonicalize(&path).map_err(|_| {
                        self.error(
                            file.span(),
                            format!("Compose file `{}` does not exist", path.display()),
                        )
                    })?;
                    paths.push(canonical);
                }
                paths
            }
            None => match default_compose_file(root) {
                Some(main) => {
                    // Compose reads the override file next to the default one.
                    let stem = main
                        .file_stem()
                        .map(|stem| stem.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let overrides = ["yaml", "yml"]
                        .iter()
                        .map(|ext| root.join(format!("{stem}.override.{ext}")))
                        .find(|path| path.is_file());
                    std::iter::once(main).chain(overrides).collect()
                }
                None if section.is_some() => {
                    let span = raw.compose.as_ref().map(Spanned::span).unwrap_or(0..0);
                    return Err(self.error(
                        span,
                        format!("`[compose]` is set but `{}` holds no Compose file; name one with `files`", root.display()),
                    ));
                }
                None => return Ok(None),
            },
        };
        let bind = match section.and_then(|compose| compose.bind.as_ref()) {
            Some(bind) => bind.get_ref().parse().map_err(|_| {
                self.error(bind.span(), format!("`bind` must be an IP address such as \"127.0.0.1\" or \"0.0.0.0\", not `{}`", bind.get_ref()))
            })?,
            None => std::net::IpAddr::from([127, 0, 0, 1]),
        };
        let strings = |list: Option<&Vec<Spanned<String>>>| {
            list.map(|list| list.iter().map(|item| item.get_ref().clone()).collect())
                .unwrap_or_default()
        };
        Ok(Some(ComposeSettings {
            files,
            profiles: strings(section.map(|compose| &compose.profiles)),
            bind,
            shared: strings(section.map(|compose| &compose.shared)),
        }))
    }

    /// The resolved compose services, plus the `depends_on` berth.toml adds to them.
    fn compose_services(
        &self,
        raw: &RawConfig,
        mut catalog: ComposeCatalog,
    ) -> Result<ComposeCatalog, ConfigError> {
        for (name, service) in &raw.services {
            let raw_service = service.get_ref();
            let Some(compose) = catalog.get_mut(name.get_ref()) else {
                continue;
            };
            if raw_service.command.is_some() {
                return Err(self.error(
                    name.span(),
                    format!(
                        "`{}` is a service of the Compose file and also has a `command` here; rename one of them",
                        name.get_ref()
                    ),
                ));
            }
            let extra = raw_service.cwd.is_some()
                || !raw_service.env.is_empty()
                || raw_service.env_file.is_some()
                || raw_service.port.is_some()
                || raw_service.ports.is_some()
                || raw_service.ready.is_some()
                || raw_service.restart.is_some()
                || raw_service.setup.is_some()
                || raw_service.stop_grace.is_some()
                || raw_service.stop_timeout.is_some()
                || raw_service.stop_signal.is_some()
                || raw_service.protocol.is_some()
                || raw_service.shell;
            compose.shared = raw_service
                .shared
                .as_ref()
                .is_some_and(|shared| *shared.get_ref());
            compose.per_instance = self.per_instance(raw_service, compose.shared)?;
            if extra {
                return Err(self.error(
                    service.span(),
                    format!(
                        "`{}` is a compose service: berth.toml may only add `depends_on`, `database`, `shared` and `per_instance` to it (its ports, health and the rest come from the Compose file)",
                        name.get_ref()
                    ),
                ));
            }
            for dependency in &raw_service.depends_on {
                if !compose.depends_on.contains(dependency.get_ref()) {
                    compose.depends_on.push(dependency.get_ref().clone());
                }
            }
        }
        Ok(catalog)
    }

    fn ports_section(
        &self,
        raw: &RawConfig,
    ) -> Result<(u32, (u16, u16), PortStrategy), ConfigError> {
        let Some(ports) = &raw.ports else {
            return Ok((DEFAULT_STRIDE, DEFAULT_AUTO_RANGE, PortStrategy::default()));
        };
        let stride = match &ports.get_ref().stride {
            Some(stride) if (1..=10000).contains(stride.get_ref()) => *stride.get_ref() as u32,
            Some(stride) => {
                return Err(self.error(stride.span(), "`stride` must be between 1 and 10000"));
            }
            None => DEFAULT_STRIDE,
        };
        let range = match &ports.get_ref().range {
            Some(range) => match range.get_ref().as_slice() {
                [low, high] if 1024 <= *low && low <= high && *high <= 65535 => {
                    (*low as u16, *high as u16)
                }
                _ => {
                    return Err(self.error(
                        range.span(),
                        "`range` must be [LOW, HIGH] with 1024 <= LOW <= HIGH <= 65535",
                    ));
                }
            },
            None => DEFAULT_AUTO_RANGE,
        };
        let strategy = match &ports.get_ref().strategy {
            None => PortStrategy::default(),
            Some(strategy) => match strategy.get_ref().as_str() {
                "offset" => PortStrategy::Offset,
                "hash" => PortStrategy::Hash,
                other => {
                    return Err(self.error(
                        strategy.span(),
                        format!("`strategy` must be \"offset\" or \"hash\", not \"{other}\""),
                    ));
                }
            },
        };
        Ok((stride, range, strategy))
    }

    /// `[worktree]`: `dir` (a template of `{main_parent}`, `{main_dir}`, `{name}`),
    /// `copy` and `link` (relative paths or globs inside the work tree), `setup`.
    fn worktree_section(&self, raw: &RawConfig) -> Result<WorktreeConfig, ConfigError> {
        let Some(worktree) = &raw.worktree else {
            return Ok(WorktreeConfig::default());
        };
        let worktree = worktree.get_ref();
        let dir = match &worktree.dir {
            None => DEFAULT_WORKTREE_DIR.to_string(),
            Some(dir) => {
                let text = dir.get_ref();
                if text.trim().is_empty() || !text.contains("{name}") {
                    return Err(self.error(
                        dir.span(),
                        "`dir` must name each worktree's directory with `{name}`, e.g. \"{main_parent}/{main_dir}-{name}\"",
                    ));
                }
                text.clone()
            }
        };
        let paths = |entries: &[toml::Spanned<String>], key: &str| {
            entries
                .iter()
                .map(|entry| {
                    let text = entry.get_ref();
                    let inside = !text.is_empty()
                        && Path::new(text).is_relative()
                        && Path::new(text)
                            .components()
                            .all(|part| matches!(part, std::path::Component::Normal(_)));
                    if inside {
                        Ok(text.clone())
                    } else {
                        Err(self.error(
                            entry.span(),
                            format!("`{key}` entries are paths or globs inside the work tree, such as \".env\" or \"config/*.key\", without `..`"),
                        ))
                    }
                })
                .collect::<Result<Vec<String>, ConfigError>>()
        };
        let copy = paths(&worktree.copy, "copy")?;
        let link = paths(&worktree.link, "link")?;
        let setup = worktree
            .setup
            .iter()
            .map(|command| command.get_ref().clone())
            .collect();
        Ok(WorktreeConfig {
            dir,
            copy,
            link,
            setup,
        })
    }

    /// `[logs]`: `max_size` (bytes, or a string with a unit) and `max_files`.
    fn logs_section(&self, raw: &RawConfig) -> Result<LogLimits, ConfigError> {
        let mut limits = LogLimits::default();
        let Some(logs) = &raw.logs else {
            return Ok(limits);
        };
        if let Some(size) = &logs.get_ref().max_size {
            let bytes = match size.get_ref() {
                RawSize::Bytes(bytes) => u64::try_from(*bytes).ok(),
                RawSize::Text(text) => parse_size(text),
            };
            limits.max_size = match bytes {
                Some(bytes) if bytes >= MIN_LOG_SIZE => bytes,
                Some(_) => {
                    return Err(self.error(
                        size.span(),
                        "`max_size` must be at least 64KiB (65536 bytes)",
                    ));
                }
                None => {
                    return Err(self.error(
                        size.span(),
                        "`max_size` must be a number of bytes or a size such as \"10MiB\" (units: B, KiB, MiB, GiB, KB, MB, GB)",
                    ));
                }
            };
        }
        if let Some(files) = &logs.get_ref().max_files {
            limits.max_files = match u32::try_from(*files.get_ref()) {
                Ok(count) if (1..=MAX_LOG_FILES).contains(files.get_ref()) => count,
                _ => {
                    return Err(self.error(
                        files.span(),
                        format!("`max_files` must be between 1 and {MAX_LOG_FILES} (the current file counts)"),
                    ));
                }
            };
        }
        Ok(limits)
    }

    fn services(
        &self,
        raw: &RawConfig,
        compose: Option<&ComposeConfig>,
    ) -> Result<IndexMap<String, ServiceConfig>, ConfigError> {
        let mut services = IndexMap::new();
        let mut env_names: HashMap<String, String> = HashMap::new();
        for name in compose.iter().flat_map(|compose| compose.services.keys()) {
            env_names.insert(crate::env_vars::port_variable(name, None), name.clone());
        }
        for (name, service) in &raw.services {
            let is_compose =
                compose.is_some_and(|compose| compose.services.contains_key(name.get_ref()));
            if is_compose {
                continue;
            }
            if !is_valid_name(name.get_ref()) {
                return Err(self.error(
                    name.span(),
                    format!(
                        "service name `{}` must start with a lowercase letter or digit and hold only lowercase letters, digits, `-` and `_` (at most 63)",
                        name.get_ref()
                    ),
                ));
            }
            let variable = crate::env_vars::port_variable(name.get_ref(), None);
            if let Some(other) = env_names.insert(variable.clone(), name.get_ref().clone()) {
                return Err(self.error(
                    name.span(),
                    format!(
                        "services `{other}` and `{}` would share the variable {variable}",
                        name.get_ref()
                    ),
                ));
            }
            let Some(command) = &service.get_ref().command else {
                return Err(self.error(
                    name.span(),
                    format!(
                        "service `{}` has no `command`{}",
                        name.get_ref(),
                        if compose.is_some() {
                            " and is not a service of the Compose file"
                        } else {
                            ""
                        }
                    ),
                ));
            };
            let config = self.service(service.get_ref(), command)?;
            services.insert(name.get_ref().clone(), config);
        }
        Ok(services)
    }

    fn service(
        &self,
        raw: &RawService,
        command: &Spanned<RawCommand>,
    ) -> Result<ServiceConfig, ConfigError> {
        let command = self.command(command, raw.shell)?;
        let cwd = raw.cwd.as_ref().map(|cwd| self.cwd(cwd)).transpose()?;
        let env = self.env_templates(&raw.env)?;
        let ports = self.ports(raw)?;
        let ready = self.ready(raw, &ports)?;
        let env_file = raw
            .env_file
            .as_ref()
            .map(|file| self.template(file))
            .transpose()?;
        let restart = match &raw.restart {
            None => RestartPolicy::OnFailure,
            Some(policy) => match policy.get_ref().as_str() {
                "on-failure" => RestartPolicy::OnFailure,
                "always" => RestartPolicy::Always,
                "never" => RestartPolicy::Never,
                other => {
                    return Err(self.error(
                        policy.span(),
                        format!("unknown restart policy `{other}`; use \"on-failure\", \"always\" or \"never\""),
                    ));
                }
            },
        };
        let setup = raw
            .setup
            .as_ref()
            .map(|setup| {
                self.no_nul(&setup.span(), setup.get_ref())?;
                CommandTemplate::parse(setup.get_ref(), raw.shell)
                    .map_err(|error| self.template_error(&setup.span(), &error, setup.get_ref()))
            })
            .transpose()?;
        let (grace_key, grace) = match (&raw.stop_grace, &raw.stop_timeout) {
            (Some(_), Some(timeout)) => {
                return Err(self.error(
                    timeout.span(),
                    "`stop_timeout` and `stop_grace` are the same setting; keep one",
                ));
            }
            (Some(grace), None) => ("stop_grace", Some(grace)),
            (None, timeout) => ("stop_timeout", timeout.as_ref()),
        };
        let stop_grace = match grace {
            None => DEFAULT_STOP_GRACE,
            Some(grace) => humantime::parse_duration(grace.get_ref()).map_err(|error| {
                self.error(
                    grace.span(),
                    format!("`{grace_key}` is not a duration like \"5s\": {error}"),
                )
            })?,
        };
        let protocol = match &raw.protocol {
            None => None,
            Some(protocol) => match protocol.get_ref().as_str() {
                value @ ("http" | "https" | "tcp") => Some(value.to_string()),
                other => {
                    return Err(self.error(
                        protocol.span(),
                        format!("unknown protocol `{other}`; use \"http\", \"https\" or \"tcp\""),
                    ));
                }
            },
        };
        let stop_signal = match &raw.stop_signal {
            None => None,
            Some(signal) => match crate::membership::parse_signal(signal.get_ref()) {
                Some(parsed)
                    if !matches!(
                        parsed,
                        nix::sys::signal::Signal::SIGKILL | nix::sys::signal::Signal::SIGSTOP
                    ) =>
                {
                    Some(parsed.as_str().to_string())
                }
                _ => {
                    return Err(self.error(
                        signal.span(),
                        format!(
                            "`stop_signal` `{}` is not a signal a process can handle; use a name like \"SIGINT\" or \"SIGTERM\"",
                            signal.get_ref()
                        ),
                    ));
                }
            },
        };
        let shared = raw.shared.as_ref().is_some_and(|shared| *shared.get_ref());
        let per_instance = self.per_instance(raw, shared)?;
        Ok(ServiceConfig {
            shared,
            per_instance,
            command,
            cwd,
            env,
            env_file,
            ports,
            depends_on: raw
                .depends_on
                .iter()
                .map(|name| name.get_ref().clone())
                .collect(),
            ready,
            restart,
            setup,
            stop_grace,
            stop_signal,
            protocol,
        })
    }

    fn command(
        &self,
        command: &Spanned<RawCommand>,
        shell: bool,
    ) -> Result<CommandTemplate, ConfigError> {
        let span = command.span();
        match command.get_ref() {
            RawCommand::Line(line) => self.no_nul(&span, line)?,
            RawCommand::Argv(words) => {
                for word in words {
                    self.no_nul(&span, word)?;
                }
            }
        }
        match command.get_ref() {
            RawCommand::Line(line) => CommandTemplate::parse(line, shell)
                .map_err(|error| self.template_error(&span, &error, line)),
            RawCommand::Argv(_) if shell => Err(self.error(
                span,
                "`shell = true` needs `command` as one string, not an array",
            )),
            RawCommand::Argv(words) => {
                CommandTemplate::parse_argv(words).map_err(|error| self.error(span, error.message))
            }
        }
    }

    /// `cwd`: without templates, it must be a directory now (a typo is caught here, not as
    /// a service that fails to start); with them, it is known only per instance.
    fn cwd(&self, cwd: &Spanned<String>) -> Result<Template, ConfigError> {
        let template = self.template(cwd)?;
        if template.placeholders().next().is_none() {
            let path = self.root.join(cwd.get_ref());
            let problem = match std::fs::metadata(&path) {
                Ok(meta) if meta.is_dir() => None,
                Ok(_) => Some("is not a directory"),
                Err(_) => Some("does not exist"),
            };
            if let Some(problem) = problem {
                return Err(self.site(cwd.span()).error(
                    format!("`cwd` `{}` {problem} (`{}`)", cwd.get_ref(), path.display()),
                    Some(
                        "create that directory, or give `cwd` a directory relative to the project root"
                            .to_string(),
                    ),
                ));
            }
        }
        Ok(template)
    }

    fn template(&self, value: &Spanned<String>) -> Result<Template, ConfigError> {
        self.no_nul(&value.span(), value.get_ref())?;
        Template::parse(value.get_ref())
            .map_err(|error| self.template_error(&value.span(), &error, value.get_ref()))
    }

    fn ports(&self, raw: &RawService) -> Result<IndexMap<String, PortBase>, ConfigError> {
        let mut ports = IndexMap::new();
        match (&raw.port, &raw.ports) {
            (Some(port), Some(_)) => {
                return Err(self.error(port.span(), "use either `port` or `ports`, not both"));
            }
            (Some(port), None) => {
                ports.insert(DEFAULT_PORT_NAME.to_string(), self.port(port)?);
            }
            (None, Some(table)) => {
                for (name, port) in table.get_ref() {
                    if !is_valid_name(name.get_ref()) {
                        return Err(self.error(
                            name.span(),
                            format!(
                                "port name `{}` must be lowercase letters, digits, `-` and `_`",
                                name.get_ref()
                            ),
                        ));
                    }
                    ports.insert(name.get_ref().clone(), self.port(port)?);
                }
                if ports.is_empty() {
                    return Err(self.error(
                        table.span(),
                        "`ports` is empty; remove it or declare a port",
                    ));
                }
            }
            (None, None) => {}
        }
        Ok(ports)
    }

    fn port(&self, port: &Spanned<RawPort>) -> Result<PortBase, ConfigError> {
        match port.get_ref() {
            RawPort::Number(number) if (1024..=65535).contains(number) => Ok(PortBase::Fixed(*number as u16)),
            RawPort::Number(number) => Err(self.error(
                port.span(),
                format!("port {number} is out of range: use 1024 to 65535 (ports under 1024 need privileges)"),
            )),
            RawPort::Word(word) if word == "auto" => Ok(PortBase::Auto),
            RawPort::Word(word) => Err(self.error(
                port.span(),
                format!("port `{word}` is neither a number nor \"auto\""),
            )),
        }
    }

    fn ready(
        &self,
        raw: &RawService,
        ports: &IndexMap<String, PortBase>,
    ) -> Result<ReadyConfig, ConfigError> {
        let Some(ready) = &raw.ready else {
            return Ok(ReadyConfig::Default);
        };
        let span = ready.span();
        let RawReady {
            tcp,
            http,
            status,
            exec,
            log,
        } = ready.get_ref();
        let given = [tcp.is_some(), http.is_some(), exec.is_some(), log.is_some()];
        if given.iter().filter(|given| **given).count() != 1 {
            return Err(self.error(span, "`ready` takes exactly one of tcp, http, exec, log"));
        }
        if let (Some(status), None) = (status, http) {
            return Err(self.error(
                status.span(),
                "`ready.status` goes with `ready.http`: it says which HTTP answers mean ready",
            ));
        }
        let needs_port = |kind: &str| {
            if ports.is_empty() {
                Err(self.error(
                    span.clone(),
                    format!("`ready = {{ {kind} = … }}` needs the service to declare a port"),
                ))
            } else {
                Ok(())
            }
        };
        if let Some(tcp) = tcp {
            if !tcp {
                // No check on its port: ready as soon as it runs (a worker that gets a
                // PORT it never listens on).
                return Ok(ReadyConfig::Started);
            }
            needs_port("tcp")?;
            return Ok(ReadyConfig::Tcp);
        }
        if let Some(path) = http {
            needs_port("http")?;
            if !path.starts_with('/') || path.chars().any(char::is_whitespace) {
                return Err(self.error(
                    span,
                    format!("`ready.http` must be a path starting with `/`, not `{path}`"),
                ));
            }
            let status = match status {
                Some(status) => self.http_status(status)?,
                None => HttpStatus::Success,
            };
            return Ok(ReadyConfig::Http {
                path: path.clone(),
                status,
            });
        }
        if let Some(line) = exec {
            self.no_nul(&span, line)?;
            let command = CommandTemplate::parse(line, raw.shell)
                .map_err(|error| self.error(span.clone(), error.message))?;
            return Ok(ReadyConfig::Exec(command));
        }
        let pattern = log.clone().unwrap_or_default();
        regex::Regex::new(&pattern).map_err(|error| {
            self.error(
                span,
                format!("`ready.log` is not a valid regular expression: {error}"),
            )
        })?;
        Ok(ReadyConfig::Log(pattern))
    }

    /// `ready.status`: `"success"` (2xx and 3xx), `"any"` (any HTTP answer), a code or a
    /// list of codes.
    fn http_status(&self, status: &Spanned<RawStatus>) -> Result<HttpStatus, ConfigError> {
        let code = |number: i64| {
            u16::try_from(number)
                .ok()
                .filter(|code| (100..600).contains(code))
                .ok_or_else(|| {
                    self.error(
                        status.span(),
                        format!("`ready.status` {number} is not an HTTP status code (100 to 599)"),
                    )
                })
        };
        match status.get_ref() {
            RawStatus::Word(word) if word == "success" => Ok(HttpStatus::Success),
            RawStatus::Word(word) if word == "any" => Ok(HttpStatus::Any),
            RawStatus::Word(word) => Err(self.error(
                status.span(),
                format!(
                    "`ready.status` must be \"success\" (2xx and 3xx), \"any\" (any HTTP answer) or status codes, not `{word}`"
                ),
            )),
            RawStatus::Code(number) => Ok(HttpStatus::Codes(vec![code(*number)?])),
            RawStatus::Codes(numbers) if numbers.is_empty() => Err(self.error(
                status.span(),
                "`ready.status` lists no codes: name at least one, or use \"any\"",
            )),
            RawStatus::Codes(numbers) => Ok(HttpStatus::Codes(
                numbers
                    .iter()
                    .map(|number| code(*number))
                    .collect::<Result<_, _>>()?,
            )),
        }
    }

    /// An `env` table: valid variable names, values as templates.
    fn env_templates(
        &self,
        raw: &IndexMap<Spanned<String>, Spanned<String>>,
    ) -> Result<IndexMap<String, Template>, ConfigError> {
        let mut env = IndexMap::new();
        for (key, value) in raw {
            if !is_env_name(key.get_ref()) {
                return Err(self.error(
                    key.span(),
                    format!(
                        "`{}` is not a valid environment variable name",
                        key.get_ref()
                    ),
                ));
            }
            env.insert(key.get_ref().clone(), self.template(value)?);
        }
        Ok(env)
    }

    /// `[project] env` and `env_file`.
    #[allow(clippy::type_complexity)]
    fn project_env(
        &self,
        raw: &RawConfig,
    ) -> Result<(IndexMap<String, Template>, Option<Template>), ConfigError> {
        let Some(project) = &raw.project else {
            return Ok((IndexMap::new(), None));
        };
        let env = self.env_templates(&project.get_ref().env)?;
        let env_file = project
            .get_ref()
            .env_file
            .as_ref()
            .map(|file| self.template(file))
            .transpose()?;
        Ok((env, env_file))
    }

    /// Every placeholder must name a service and port that exist.
    fn check_names(&self, raw: &RawConfig, config: &Config) -> Result<(), ConfigError> {
        if let Some(project) = &raw.project {
            let project = project.get_ref();
            let located = env_placeholders(
                &project.env,
                &config.env,
                project.env_file.as_ref(),
                config.env_file.as_ref(),
            );
            self.check_references(located, config)?;
        }
        for (name, raw_service) in &raw.services {
            let (Some(service), Some(command)) = (
                config.services.get(name.get_ref()),
                &raw_service.get_ref().command,
            ) else {
                continue;
            };
            let mut located: Vec<(Range<usize>, Vec<&Placeholder>)> = Vec::new();
            located.push((command.span(), service.command.placeholders()));
            if let (Some(span), Some(cwd)) = (
                raw_service.get_ref().cwd.as_ref().map(Spanned::span),
                &service.cwd,
            ) {
                located.push((span, cwd.placeholders().collect()));
            }
            located.extend(env_placeholders(
                &raw_service.get_ref().env,
                &service.env,
                raw_service.get_ref().env_file.as_ref(),
                service.env_file.as_ref(),
            ));
            if let (Some(setup), Some(template)) = (&raw_service.get_ref().setup, &service.setup) {
                located.push((setup.span(), template.placeholders()));
            }
            if let (Some(ready), ReadyConfig::Exec(command)) =
                (&raw_service.get_ref().ready, &service.ready)
            {
                located.push((ready.span(), command.placeholders()));
            }
            self.check_references(located, config)?;
        }
        Ok(())
    }

    /// `[services.X.per_instance]`, which only a shared service may have.
    fn per_instance(
        &self,
        raw: &RawService,
        shared: bool,
    ) -> Result<Option<PerInstanceConfig>, ConfigError> {
        let Some(per_instance) = &raw.per_instance else {
            return Ok(None);
        };
        if !shared {
            return Err(self.error(
                per_instance.span(),
                "`per_instance` needs `shared = true`: it runs for each instance that uses a shared service",
            ));
        }
        let parse = |value: &Option<Spanned<String>>| {
            value
                .as_ref()
                .map(|text| {
                    self.no_nul(&text.span(), text.get_ref())?;
                    CommandTemplate::parse(text.get_ref(), raw.shell)
                        .map_err(|error| self.template_error(&text.span(), &error, text.get_ref()))
                })
                .transpose()
        };
        let per_instance = per_instance.get_ref();
        Ok(Some(PerInstanceConfig {
            create: parse(&per_instance.create)?,
            drop: parse(&per_instance.drop)?,
        }))
    }

    /// `database = …`: a known kind, and templates for its name, user and password.
    fn database(&self, database: &Spanned<RawDatabase>) -> Result<DatabaseConfig, ConfigError> {
        let span = database.span();
        let kind = |text: &str| match text {
            "postgres" => Ok(DatabaseKind::Postgres),
            other => Err(self.error(
                span.clone(),
                format!("unknown database kind `{other}`; berth knows \"postgres\""),
            )),
        };
        let template = |text: &Option<String>| {
            text.as_ref()
                .map(|text| {
                    self.no_nul(&span, text)?;
                    Template::parse(text).map_err(|error| self.template_error(&span, &error, text))
                })
                .transpose()
        };
        Ok(match database.get_ref() {
            RawDatabase::Kind(text) => DatabaseConfig {
                kind: kind(text)?,
                name: None,
                user: None,
                password: None,
            },
            RawDatabase::Table(table) => DatabaseConfig {
                kind: kind(&table.kind)?,
                name: template(&table.name)?,
                user: template(&table.user)?,
                password: template(&table.password)?,
            },
        })
    }

    /// A shared service depends only on shared services (it runs apart from every
    /// instance); its `per_instance` templates, and every service's `database`
    /// templates, name what exists.
    fn check_shared(&self, raw: &RawConfig, config: &Config) -> Result<(), ConfigError> {
        let shared_names = config.shared_services();
        for (name, raw_service) in &raw.services {
            let compose = config
                .compose
                .as_ref()
                .and_then(|compose| compose.services.get(name.get_ref()));
            let per_instance = match (config.services.get(name.get_ref()), compose) {
                (Some(service), _) => service.per_instance.as_ref(),
                (None, Some(service)) => service.per_instance.as_ref(),
                (None, None) => continue,
            };
            let mut located: Vec<(Range<usize>, Vec<&Placeholder>)> = Vec::new();
            if let (Some(raw_per_instance), Some(per_instance)) =
                (&raw_service.get_ref().per_instance, per_instance)
            {
                let raw_per_instance = raw_per_instance.get_ref();
                for (text, template) in [
                    (&raw_per_instance.create, &per_instance.create),
                    (&raw_per_instance.drop, &per_instance.drop),
                ] {
                    if let (Some(text), Some(template)) = (text, template) {
                        located.push((text.span(), template.placeholders()));
                    }
                }
            }
            self.check_references(located, config)?;
            if !shared_names.contains(name.get_ref()) {
                continue;
            }
            // Dependencies from berth.toml and, for a compose service, its Compose file.
            let span = raw_service
                .get_ref()
                .shared
                .as_ref()
                .map_or_else(|| name.span(), Spanned::span);
            for dependency in config.depends_on(name.get_ref()) {
                if !shared_names.contains(dependency) {
                    let span = raw_service
                        .get_ref()
                        .depends_on
                        .iter()
                        .find(|raw| raw.get_ref() == dependency)
                        .map_or_else(|| span.clone(), Spanned::span);
                    return Err(self.error(
                        span,
                        format!(
                            "shared service `{}` depends on `{dependency}`, which is not shared; a shared service runs apart from every instance",
                            name.get_ref(),
                        ),
                    ));
                }
            }
        }
        // `database`: a port to reach it on, and templates naming what exists, for
        // process and compose services alike.
        for (name, raw_service) in &raw.services {
            if let (Some(raw_database), Some(database)) = (
                &raw_service.get_ref().database,
                config.databases.get(name.get_ref()),
            ) {
                if config
                    .ports_of(name.get_ref())
                    .is_none_or(IndexMap::is_empty)
                {
                    return Err(self.error(
                        raw_database.span(),
                        format!(
                            "`{}` has a `database` but no port for `berth db` to reach it on",
                            name.get_ref()
                        ),
                    ));
                }
                let templates = [&database.name, &database.user, &database.password];
                let placeholders = templates
                    .into_iter()
                    .flatten()
                    .flat_map(|template| template.placeholders())
                    .collect();
                self.check_references(vec![(raw_database.span(), placeholders)], config)?;
            }
        }
        Ok(())
    }

    fn check_dependencies(&self, raw: &RawConfig, config: &Config) -> Result<(), ConfigError> {
        for (name, service) in &raw.services {
            for dependency in &service.get_ref().depends_on {
                if !config.has_service(dependency.get_ref()) {
                    return Err(self.error(
                        dependency.span(),
                        format!(
                            "`{}` depends on `{}`, which is not a service",
                            name.get_ref(),
                            dependency.get_ref()
                        ),
                    ));
                }
                if dependency.get_ref() == name.get_ref() {
                    return Err(self.error(
                        dependency.span(),
                        format!("`{}` depends on itself", name.get_ref()),
                    ));
                }
            }
        }
        let graph: IndexMap<String, Vec<String>> = config
            .service_names()
            .into_iter()
            .map(|name| {
                let dependencies = config.depends_on(&name).to_vec();
                (name, dependencies)
            })
            .collect();
        if let Err(cycle) = crate::graph::start_order(&graph) {
            let span = raw
                .services
                .keys()
                .find(|name| *name.get_ref() == cycle[0])
                .map(Spanned::span)
                .unwrap_or(0..0);
            return Err(self.error(span, format!("dependency cycle: {}", cycle.join(" -> "))));
        }
        Ok(())
    }

    fn check_duplicate_ports(&self, raw: &RawConfig, config: &Config) -> Result<(), ConfigError> {
        let mut seen: HashMap<u16, String> = HashMap::new();
        for name in config.service_names() {
            let Some(ports) = config.ports_of(&name) else {
                continue;
            };
            for (port_name, port) in ports {
                // A UDP port may share its number with a TCP one.
                let tcp = !port_name.ends_with("-udp") && !port_name.ends_with("-sctp");
                if let PortBase::Fixed(number) = port
                    && tcp
                    && let Some(other) = seen.insert(*number, name.clone())
                {
                    let span = raw
                        .services
                        .iter()
                        .find(|(key, _)| *key.get_ref() == name)
                        .map(|(key, _)| key.span())
                        .unwrap_or(0..0);
                    return Err(self.error(
                        span,
                        format!("port {number} is declared by both `{other}` and `{name}`"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A message of serde's about a value of the wrong type, in the words of berth.toml:
/// `port = [1]` gives "`port` must be a port number … or \"auto\"", never a Rust type.
fn plain_words(message: &str, key: Option<String>) -> String {
    let subject = key.map_or_else(|| "this value".to_string(), |key| format!("`{key}`"));
    // An untagged enum's `expecting` text, which says what it must be.
    if let Some(expected) = message.strip_prefix("must be ") {
        return format!("{subject} must be {expected}");
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some((found, expected)) = message
            .strip_prefix(prefix)
            .and_then(|rest| rest.rsplit_once(", expected "))
        {
            return format!(
                "{subject} must be {}, not {}",
                expected_words(expected),
                found_words(found)
            );
        }
    }
    message.to_string()
}

fn expected_words(expected: &str) -> String {
    match expected {
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" => "an integer".to_string(),
        "a sequence" => "an array".to_string(),
        "a map" => "a table".to_string(),
        other if other.starts_with("struct ") => "a table".to_string(),
        other => other.to_string(),
    }
}

fn found_words(found: &str) -> String {
    match found {
        "sequence" => return "an array".to_string(),
        "map" => return "a table".to_string(),
        _ => {}
    }
    if found.starts_with("string ") {
        return format!("the {found}");
    }
    // `integer `5``, `floating point `1.5``, `boolean `true``.
    match found.split_once(" `") {
        Some((kind, value)) => {
            let kind = match kind {
                "floating point" => "number",
                other => other,
            };
            format!("the {kind} {}", value.trim_end_matches('`'))
        }
        None => found.to_string(),
    }
}

fn unknown_reference(var: &Var, config: &Config) -> Option<String> {
    let (service, port) = match var {
        Var::Port { service, port } | Var::Url { service, port } => (service, port),
        Var::Host { service } | Var::PublicUrl { service } => (service, &None),
        _ => return None,
    };
    let Some(ports) = config.ports_of(service) else {
        return Some(format!("unknown service `{service}` in a template"));
    };
    match port {
        None if ports.is_empty() => Some(format!("service `{service}` declares no port")),
        Some(port) if !ports.contains_key(port) => Some(format!(
            "service `{service}` has no port named `{port}` (it has: {})",
            ports.keys().cloned().collect::<Vec<_>>().join(", ")
        )),
        _ => None,
    }
}

fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(first) if first.is_ascii_lowercase() || first.is_ascii_digit())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Where each placeholder of an `env` table and an `env_file` stands in berth.toml.
#[allow(clippy::type_complexity)]
fn env_placeholders<'a>(
    raw_env: &IndexMap<Spanned<String>, Spanned<String>>,
    env: &'a IndexMap<String, Template>,
    raw_env_file: Option<&Spanned<String>>,
    env_file: Option<&'a Template>,
) -> Vec<(Range<usize>, Vec<&'a Placeholder>)> {
    let mut located: Vec<(Range<usize>, Vec<&Placeholder>)> = raw_env
        .iter()
        .map(|(key, value)| (value.span(), env[key.get_ref()].placeholders().collect()))
        .collect();
    if let (Some(raw), Some(template)) = (raw_env_file, env_file) {
        located.push((raw.span(), template.placeholders().collect()));
    }
    located
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(first) if first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE_NAME), text).unwrap();
        load(dir.path(), &mut |_, _| panic!("no Compose file here"))
    }

    fn error_of(text: &str) -> String {
        load_text(text).unwrap_err().to_string()
    }

    /// The located error loading `bytes` gives: its one-line message and its plain
    /// report, the temp directory left out of both.
    fn located(bytes: &[u8]) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE_NAME), bytes).unwrap();
        let error = load(dir.path(), &mut |_, _| panic!("no Compose file here")).unwrap_err();
        let crate::Error::Config(error) = error else {
            panic!("not a configuration error: {error}");
        };
        let prefix = format!("{}/", dir.path().display());
        let report = error.report(false).expect("a located error has a report");
        (
            error.to_string().replace(&prefix, ""),
            report.replace(&prefix, ""),
        )
    }

    #[test]
    fn a_located_error_shows_its_line_with_the_offending_text_underlined() {
        let (message, report) = located(b"[services.a]\ncommand = \"x\"\nport = [1]\n");
        let expected = "berth.toml:3:8: `port` must be a port number (1024 to 65535) or \"auto\"";
        assert_eq!(message, expected);
        assert_eq!(
            report,
            "\
error: `port` must be a port number (1024 to 65535) or \"auto\"
 --> berth.toml:3:8
  |
3 | port = [1]
  |        ^^^"
        );
    }

    #[test]
    fn a_crlf_line_and_a_byte_that_is_not_utf8_are_shown_as_text() {
        let (_, report) = located(b"[services.a]\r\ncommand = \"x {{ port.ghost }}\"\r\n");
        assert_eq!(
            report,
            "\
error: unknown service `ghost` in a template
 --> berth.toml:2:14
  |
2 | command = \"x {{ port.ghost }}\"
  |              ^^^^^^^^^^^^^^^^^"
        );
        let (message, report) = located(b"[services.a]\ncommand = \"caf\xe9\"\n");
        assert!(message.starts_with("berth.toml:2:15: "), "{message}");
        assert!(
            report.ends_with(
                "\
2 | command = \"caf\u{FFFD}\"
  |               ^"
            ),
            "{report}"
        );
    }

    #[test]
    fn databases_and_shared_services_are_checked() {
        let config = load_text(
            r#"
[services.db]
command = "postgres -p {{ port.db }}"
port = 5432
shared = true
database = { kind = "postgres", user = "app", name = "app_{{ instance.index }}" }
[services.db.per_instance]
create = "createdb -p {{ port.db }} app_{{ instance.index }}"
[services.api]
command = "api"
depends_on = ["db"]
"#,
        )
        .unwrap();
        assert!(config.services["db"].shared);
        assert!(
            config.services["db"]
                .per_instance
                .as_ref()
                .unwrap()
                .create
                .is_some()
        );
        assert_eq!(config.databases["db"].kind, DatabaseKind::Postgres);
        let mut instance = config.clone();
        instance.partition(false);
        assert_eq!(instance.service_names(), ["api"]);
        assert!(instance.services["api"].depends_on.is_empty());
        assert!(instance.uses_shared.contains_key("db"));
        assert!(instance.databases.contains_key("db"));
        let mut shared = config;
        shared.partition(true);
        assert_eq!(shared.service_names(), ["db"]);

        let cases = [
            (
                "[services.a]\ncommand = \"x\"\ndatabase = \"mysql\"\n",
                "unknown database kind `mysql`",
            ),
            (
                "[services.a]\ncommand = \"x\"\ndatabase = \"postgres\"\n",
                "no port for `berth db`",
            ),
            (
                "[services.a]\ncommand = \"x\"\n[services.a.per_instance]\ncreate = \"y\"\n",
                "`per_instance` needs `shared = true`",
            ),
            (
                "[services.a]\ncommand = \"x\"\n[services.b]\ncommand = \"y\"\nshared = true\ndepends_on = [\"a\"]\n",
                "which is not shared",
            ),
            (
                "[services.a]\ncommand = \"x\"\nport = 1234\ndatabase = { kind = \"postgres\", name = \"{{ port.nope }}\" }\n",
                "unknown service `nope`",
            ),
            (
                "[services.a]\ncommand = \"x\"\nshared = true\n[services.a.per_instance]\ndrop = \"y {{ instance.nope }}\"\n",
                "instance.nope",
            ),
        ];
        for (text, expected) in cases {
            let error = error_of(text);
            assert!(error.contains(expected), "{text}\n→ {error}");
            assert!(error.contains("berth.toml:"), "located: {error}");
        }
    }

    #[test]
    fn loads_a_full_service() {
        let config = load_text(
            r#"
[project]
name = "shop"
[ports]
stride = 10
range = [21000, 21999]
[services.db]
command = ["pg", "--port", "{{ port.db }}"]
port = 5432
[services.api]
command = "run --port {{ port.api.http }}"
ports = { http = 3000, admin = "auto" }
depends_on = ["db"]
ready = { http = "/health" }
restart = "always"
env = { DB = "postgres://127.0.0.1:{{ port.db }}/app_{{ instance.index }}" }
setup = "init {{ instance.data }}"
stop_grace = "2s"
"#,
        )
        .unwrap();
        assert_eq!(config.project, "shop");
        assert_eq!(config.stride, 10);
        assert_eq!(config.logs, LogLimits::default());
        let api = &config.services["api"];
        assert_eq!(api.ports["admin"], PortBase::Auto);
        assert_eq!(api.restart, RestartPolicy::Always);
        assert_eq!(api.stop_grace, Duration::from_secs(2));
    }

    #[test]
    fn errors_name_file_line_column_and_text() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "[services.a]\ncommand = \"x\"\ncolour = 1\n",
                ":3:1:",
                "unknown field `colour`",
            ),
            (
                "[services.a]\ncommand = \"x {{ port.b }}\"\n",
                ":2:14:",
                "unknown service `b`",
            ),
            (
                "[services.a]\ncommand = \"x {{ instance.nope }}\"\n",
                ":2:14:",
                "unknown template name",
            ),
            (
                "[services.a]\ncommand = \"x\"\nport = 70000\n",
                ":3:8:",
                "out of range",
            ),
            (
                "[services.a]\ncommand = \"x\"\nport = 80\n",
                ":3:8:",
                "out of range",
            ),
            (
                "[services.a]\ncommand = \"x\"\ndepends_on = [\"b\"]\n",
                ":3:15:",
                "not a service",
            ),
            (
                "[services.a]\ncommand = \"x\"\nrestart = \"sometimes\"\n",
                ":3:11:",
                "unknown restart policy",
            ),
            (
                "[services.A]\ncommand = \"x\"\n",
                ":1:11:",
                "service name `A`",
            ),
            (
                "[services.a]\ncommand = \"x\"\nready = { http = \"/\" }\n",
                ":3:9:",
                "needs the service to declare a port",
            ),
            ("[services.a\ncommand = \"x\"\n", ":1:", ""),
            (
                "[services.a]\ncommand = \"x\"\nport = 3000\n[services.b]\ncommand = \"y\"\nport = 3000\n",
                ":4:11:",
                "declared by both",
            ),
            (
                "[services.a]\ncommand = \"x\"\ndepends_on = [\"b\"]\n[services.b]\ncommand = \"y\"\ndepends_on = [\"a\"]\n",
                ":1:11:",
                "dependency cycle",
            ),
            ("[ports]\nstride = 0\n", ":2:10:", "stride"),
            (
                "[logs]\nmax_size = \"10 MiBs\"\n",
                ":2:12:",
                "`max_size` must be a number of bytes or a size such as \"10MiB\"",
            ),
            ("[logs]\nmax_size = 1024\n", ":2:12:", "at least 64KiB"),
            ("[logs]\nmax_size = -5\n", ":2:12:", "`max_size` must be"),
            ("[logs]\nmax_files = 0\n", ":2:13:", "between 1 and 100"),
            (
                "[logs]\nmax_files = \"3\"\n",
                ":2:13:",
                "must be an integer",
            ),
            ("[logs]\nkeep = 3\n", ":2:1:", "unknown field `keep`"),
            (
                "[services.a]\ncommand = \"echo 'x\"\n",
                ":2:",
                "unbalanced quotes",
            ),
        ];
        for (text, location, message) in cases {
            let error = error_of(text);
            assert!(
                error.contains(&format!("{CONFIG_FILE_NAME}{location}")),
                "{text:?}: {error}"
            );
            assert!(error.contains(message), "{text:?}: {error}");
        }
    }

    #[test]
    fn logs_limits_take_bytes_or_sizes_with_units() {
        let config = load_text("[logs]\nmax_size = \"1MiB\"\nmax_files = 3\n").unwrap();
        assert_eq!(
            config.logs,
            LogLimits {
                max_size: 1024 * 1024,
                max_files: 3
            }
        );
        let config = load_text("[logs]\nmax_size = 100000\n").unwrap();
        assert_eq!(config.logs.max_size, 100_000);
        assert_eq!(config.logs.max_files, LogLimits::DEFAULT_MAX_FILES);
    }

    #[test]
    fn http_readiness_takes_the_answers_it_accepts() {
        let status_of = |ready: &str| {
            let config = load_text(&format!(
                "[services.web]\ncommand = \"x\"\nport = 3000\nready = {ready}\n"
            ))
            .unwrap();
            match &config.services["web"].ready {
                ReadyConfig::Http { path, status } => (path.clone(), status.clone()),
                other => panic!("{ready}: {other:?}"),
            }
        };
        let cases = [
            ("{ http = \"/health\" }", "/health", HttpStatus::Success),
            (
                "{ http = \"/\", status = \"success\" }",
                "/",
                HttpStatus::Success,
            ),
            ("{ http = \"/\", status = \"any\" }", "/", HttpStatus::Any),
            (
                "{ status = 404, http = \"/\" }",
                "/",
                HttpStatus::Codes(vec![404]),
            ),
            (
                "{ http = \"/\", status = [200, 401] }",
                "/",
                HttpStatus::Codes(vec![200, 401]),
            ),
        ];
        for (ready, path, status) in cases {
            assert_eq!(status_of(ready), (path.to_string(), status), "{ready}");
        }
    }

    #[test]
    fn bad_http_statuses_are_located_errors() {
        let head = "[services.web]\ncommand = \"x\"\nport = 3000\n";
        let cases = [
            (
                "ready = { http = \"/\", status = \"all\" }",
                ":4:32:",
                "`ready.status` must be \"success\" (2xx and 3xx), \"any\" (any HTTP answer) or status codes, not `all`",
            ),
            (
                "ready = { http = \"/\", status = 99 }",
                ":4:32:",
                "`ready.status` 99 is not an HTTP status code (100 to 599)",
            ),
            (
                "ready = { http = \"/\", status = [200, 600] }",
                ":4:32:",
                "`ready.status` 600 is not an HTTP status code (100 to 599)",
            ),
            (
                "ready = { http = \"/\", status = [] }",
                ":4:32:",
                "`ready.status` lists no codes",
            ),
            (
                "ready = { tcp = true, status = \"any\" }",
                ":4:32:",
                "`ready.status` goes with `ready.http`",
            ),
            (
                "ready = { http = \"/\", status = true }",
                ":4:",
                "must be \"success\", \"any\", an HTTP status code or a list of them",
            ),
        ];
        for (ready, location, message) in cases {
            let error = error_of(&format!("{head}{ready}\n"));
            assert!(
                error.contains(&format!("{CONFIG_FILE_NAME}{location}")),
                "{ready}: {error}"
            );
            assert!(error.contains(message), "{ready}: {error}");
        }
    }

    #[test]
    fn default_project_name_is_the_sanitised_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("My Shop");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join(CONFIG_FILE_NAME), "").unwrap();
        let no_compose: ComposeResolver<ConfigError> = &mut |_, _| panic!("no Compose file here");
        assert_eq!(load(&root, no_compose).unwrap().project, "my-shop");
    }
}
