//! The one layer that turns settings into built values: the source, the
//! target, the scope rules, the copy's limits and budgets. Every command
//! that touches mailboxes (`migrate`, `check`, `verify`, `bench`) builds
//! here and runs over the users the same way ([`each_user`]), so none of
//! them wires a backend of its own and none reaches into another's code.
//! Below this layer nothing reads [`Settings`]: backends and the pipeline
//! receive what was built for them.

use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;

use crate::checkpoint::CheckpointError;
use crate::dav::{DavAuth, DavClient, DavOptions};
use crate::pace::{InFlightBudget, Limits as PaceLimits, RetryPolicy};
use crate::plan;
use crate::roster::UserJob;
use crate::scope;
use crate::settings::{PimSettings, PimSourceSettings, PimTargetSettings, Settings, SourceSettings, TargetSettings};
use crate::source::dav::DavSource;
use crate::source::pim::{FilesSource, PimSource};
use crate::source::{ImapSource, MboxSource, Source};
use crate::target::dav_pim::DavPimTarget;
use crate::target::pim::PimTarget;
use crate::target::{Target, graph::GraphTarget, imap::ImapTarget, maildir::MaildirTarget};

/// Why a command could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

impl From<CheckpointError> for StartError {
    fn from(e: CheckpointError) -> Self {
        StartError(e.0)
    }
}

/// The source the settings describe: an IMAP server (logging in with OAuth
/// tokens when `[source] auth = "xoauth2"`) or each user's Takeout mbox.
pub fn source(settings: &Settings) -> Result<Source, StartError> {
    Ok(match &settings.source {
        SourceSettings::Mbox { path } => Source::Mbox(MboxSource::new(path.clone())),
        SourceSettings::Imap {
            endpoint,
            tokens,
            shared_folders,
        } => {
            let source = ImapSource::new(endpoint.clone())
                .map_err(|e| StartError(e.message))?
                .with_shared_folders(*shared_folders);
            Source::Imap(match tokens {
                Some(tokens) => source.with_tokens(crate::oauth::TokenSource::new(tokens.clone(), endpoint.timeout)),
                None => source,
            })
        }
    })
}

/// The target the settings describe.
pub fn target(settings: &TargetSettings) -> Result<Arc<dyn Target>, StartError> {
    Ok(match settings {
        TargetSettings::Imap {
            endpoint,
            login,
            password,
            tokens,
        } => {
            let target = ImapTarget::new(endpoint.clone(), login.clone(), password.clone())
                .map_err(|e| StartError(e.message))?;
            Arc::new(match tokens {
                Some(t) => target.with_tokens(crate::oauth::TokenSource::new(t.clone(), endpoint.timeout)),
                None => target,
            })
        }
        TargetSettings::Maildir { path, folder_names } => Arc::new(MaildirTarget::new(path.clone(), *folder_names)),
        TargetSettings::Graph(graph) => Arc::new(GraphTarget::new(graph.clone()).map_err(|e| StartError(e.message))?),
    })
}

/// The scope rules: `[limits] exclude` (globs matched case-insensitively
/// against a folder's display path), the label rules and the plan's limits.
pub fn scope_rules(settings: &Settings) -> Result<scope::Rules, StartError> {
    let mut globs = globset::GlobSetBuilder::new();
    for pattern in &settings.limits.exclude {
        let glob = globset::GlobBuilder::new(pattern)
            .case_insensitive(true)
            .literal_separator(false)
            .build()
            .map_err(|e| StartError(format!("exclude pattern {pattern:?}: {e}")))?;
        globs.add(glob);
    }
    Ok(scope::Rules {
        exclude: globs.build().map_err(|e| StartError(e.to_string()))?,
        labels: settings.labels,
        limits: plan::Limits {
            max_items: settings.limits.max_items,
            max_message_bytes: settings.limits.max_message_bytes,
        },
    })
}

/// How the copy runs: parallelism, batches, budgets, retries and pacing.
#[derive(Clone)]
pub struct Copy {
    pub parallel_users: usize,
    pub connections_per_user: usize,
    pub batch_messages: usize,
    /// Fetch batch size: `batch_bytes`, or less so that every connection
    /// of every mailbox running at once fits in the in-flight budget.
    pub batch_bytes: u64,
    pub in_flight: InFlightBudget,
    pub retry: RetryPolicy,
    pub pace: PaceLimits,
    /// What each mailbox is waiting on, sampled by the run for progress,
    /// events and the state DB (shared by the passes of `migrate --every`).
    pub waits: crate::wait::Waits,
    pub deletions: Deletions,
}

/// What a run does with copies whose message was deleted on the source.
#[derive(Clone, Copy, Debug)]
pub struct Deletions {
    /// Delete them from the target (else they are kept and counted).
    pub mirror: bool,
    /// At most this share of a mailbox's copies deleted in one run.
    pub max_percent: u32,
    /// Delete beyond `max_percent`.
    pub force: bool,
}

/// Everything `run::migrate` needs, built.
pub struct Migration {
    pub source: Source,
    pub target: Arc<dyn Target>,
    pub scope: scope::Rules,
    pub copy: Copy,
    pub state_path: PathBuf,
    /// The shard this run is, as the state DB records it.
    pub shard: Option<String>,
    /// Contacts and calendars (`[contacts_calendars]`); `None`: mail only.
    pub pim: Option<Pim>,
}

/// How each user's contacts and calendars are copied.
pub struct Pim {
    /// Where each user's contacts and calendars are read from; see
    /// [`Pim::source_for`].
    pub source: PimSourceSettings,
    pub source_options: DavOptions,
    /// `auth = "oauth"`: the DAV source's bearer tokens, shared by every
    /// user of the run (one cache).
    pub source_tokens: Option<crate::oauth::TokenSource>,
    pub target: Arc<dyn PimTarget>,
    /// The target is a DAV server: it logs in with the users file's target
    /// login and password, or the source's when the row has none.
    pub target_is_dav: bool,
}

impl Pim {
    /// The user's contacts-and-calendars source: the DAV server, logging in
    /// with the users file's source login and password, or the user's
    /// files (the path template with `{email}` filled in).
    pub fn source_for(&self, user: &UserJob) -> crate::error::Result<PimSource> {
        Ok(match &self.source {
            PimSourceSettings::Dav { url } => {
                let auth = match &self.source_tokens {
                    // A service account's `sub` and a token command's
                    // CUTOVER_LOGIN: the login, as for IMAP XOAUTH2.
                    Some(tokens) => DavAuth::OAuth {
                        user: user.username.clone(),
                        tokens: tokens.clone(),
                    },
                    None => DavAuth::Basic {
                        user: user.username.clone(),
                        password: user.password.clone(),
                    },
                };
                PimSource::Dav(DavSource::new(DavClient::new(url, auth, self.source_options.clone())?))
            }
            PimSourceSettings::Files { path } => PimSource::Files(FilesSource::new(
                PathBuf::from(path.to_string_lossy().replace("{email}", &user.email)),
                &user.email,
            )),
        })
    }

    /// The source, for logs and `check`: the server URL or the path template.
    pub fn describe_source(&self) -> String {
        match &self.source {
            PimSourceSettings::Dav { url } => format!("CalDAV/CardDAV {url}"),
            PimSourceSettings::Files { path } => format!(".ics/.vcf files {}", path.display()),
        }
    }
}

/// Builds the contacts-and-calendars side. A Graph target shares the mail
/// target's [`GraphTarget`], so both are paced as one client per mailbox.
fn pim(settings: &PimSettings, graph: Option<&Arc<GraphTarget>>) -> Result<Pim, StartError> {
    let options = DavOptions {
        timeout: settings.timeout,
        ..DavOptions::default()
    };
    let (target, target_is_dav): (Arc<dyn PimTarget>, bool) = match &settings.target {
        PimTargetSettings::Graph => (
            graph
                .ok_or_else(|| StartError("[contacts_calendars] target = \"graph\" needs a Graph [target]".into()))?
                .clone(),
            false,
        ),
        PimTargetSettings::Dav { url } => (Arc::new(DavPimTarget::new(url.clone(), options.clone())), true),
    };
    Ok(Pim {
        source: settings.source.clone(),
        source_tokens: settings
            .tokens
            .clone()
            .map(|t| crate::oauth::TokenSource::new(t, settings.timeout)),
        source_options: options,
        target,
        target_is_dav,
    })
}

/// Builds a migration of `users` mailboxes.
pub fn migration(settings: &Settings, users: usize) -> Result<Migration, StartError> {
    let run = &settings.run;
    let mailboxes_at_once = run.parallel_users.min(users);
    let connections_per_user = plan::connections_per_mailbox(
        run.connections_per_user,
        settings.limits.pace.connections_per_user,
        settings
            .source
            .endpoint()
            .map(|_| settings.limits.pace.connections_per_source_host),
        mailboxes_at_once,
    );
    if connections_per_user < run.connections_per_user {
        tracing::info!(
            "{mailboxes_at_once} mailboxes at once share the source's {} connections (max_connections_per_source_host): {connections_per_user} per mailbox instead of connections_per_user = {}",
            settings.limits.pace.connections_per_source_host,
            run.connections_per_user
        );
    }
    // A Graph target is built once and shared with contacts and calendars.
    let graph = match &settings.target {
        TargetSettings::Graph(graph) => Some(Arc::new(
            GraphTarget::new(graph.clone()).map_err(|e| StartError(e.message))?,
        )),
        _ => None,
    };
    let mail_target: Arc<dyn Target> = match &graph {
        Some(g) => g.clone(),
        None => target(&settings.target)?,
    };
    Ok(Migration {
        pim: settings.pim.as_ref().map(|p| pim(p, graph.as_ref())).transpose()?,
        source: source(settings)?,
        target: mail_target,
        scope: scope_rules(settings)?,
        copy: Copy {
            parallel_users: run.parallel_users,
            connections_per_user,
            batch_messages: run.batch_messages,
            batch_bytes: plan::batch_bytes_within_budget(
                run.batch_bytes,
                run.max_in_flight_bytes,
                mailboxes_at_once,
                connections_per_user,
            ),
            in_flight: InFlightBudget::new(run.max_in_flight_bytes),
            retry: RetryPolicy::new(run.max_attempts),
            pace: PaceLimits::new(&settings.limits.pace),
            waits: crate::wait::Waits::default(),
            deletions: Deletions {
                mirror: run.mirror_deletions,
                max_percent: run.max_delete_percent,
                force: false,
            },
        },
        state_path: settings.state_path.clone(),
        shard: settings.shard.map(|s| s.to_string()),
    })
}

/// Runs `work` for every user of the users file, at most `parallel` at
/// once, each on a task of its own so a panic in one mailbox cannot take
/// the others down. Results come back in the users file's order; a task
/// that panicked yields `on_panic(email, reason)`.
pub async fn each_user<T, Fut>(
    users: Vec<UserJob>,
    parallel: usize,
    work: impl Fn(UserJob) -> Fut,
    on_panic: impl Fn(String, String) -> T,
) -> Vec<T>
where
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut results: Vec<(usize, T)> = futures::stream::iter(users.into_iter().enumerate())
        .map(|(i, user)| {
            let email = user.email.clone();
            let task = tokio::spawn(work(user));
            let on_panic = &on_panic;
            async move {
                let result = task
                    .await
                    .unwrap_or_else(|e| on_panic(email, format!("internal error: {e}")));
                (i, result)
            }
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}
