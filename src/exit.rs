//! Exit codes: what a script can act on.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | failed (an error not covered below) |
//! | 2 | usage: bad arguments, unknown ids, invalid config |
//! | 3 | done, but some inputs could not be used (see the messages) |
//! | 5 | temporary failure: try again later (network, rate limit, busy device) |
//! | 7 | fatal: needs a person (ledger unusable, disk full, missing model, bad key) |
//! | 9 | nothing to do |
//! | 130 | stopped by Ctrl-C or SIGTERM (everything done before is kept) |

/// A process exit code with a meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// 0: done.
    Done,
    /// 1: failed.
    Failed,
    /// 2: bad usage.
    Usage,
    /// 3: done, some inputs unusable.
    Partial,
    /// 5: temporary failure, retry later.
    Temporary,
    /// 7: fatal, needs a person.
    Fatal,
    /// 9: nothing to do.
    NothingToDo,
    /// 130: interrupted (Ctrl-C, SIGTERM).
    Interrupted,
}

impl ExitCode {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Done => 0,
            ExitCode::Failed => 1,
            ExitCode::Usage => 2,
            ExitCode::Partial => 3,
            ExitCode::Temporary => 5,
            ExitCode::Fatal => 7,
            ExitCode::NothingToDo => 9,
            ExitCode::Interrupted => 130,
        }
    }
}

/// An error that ends the command with a particular exit code.
#[derive(Debug)]
pub struct Failure {
    /// The code to exit with.
    pub code: ExitCode,
    /// The error, with its chain of causes.
    pub error: anyhow::Error,
    /// What to do about it, in the command line's words.
    pub hint: Option<String>,
    /// What to do about it, typed (for `--json`).
    pub remedy: Option<crate::engine::remedy::Remedy>,
}

impl Failure {
    /// A failure with an explicit code.
    pub fn new(code: ExitCode, error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code,
            error: error.into(),
            hint: None,
            remedy: None,
        }
    }

    /// A usage error (exit 2).
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Self::new(ExitCode::Usage, error)
    }

    /// A fatal error (exit 7).
    pub fn fatal(error: impl Into<anyhow::Error>) -> Self {
        Self::new(ExitCode::Fatal, error)
    }
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        let error = e.into();
        let code = match crate::engine::jobs::classify(error.as_ref()) {
            crate::engine::jobs::ErrorClass::NeedsPerson => ExitCode::Fatal,
            _ => ExitCode::Failed,
        };
        Failure::new(code, error)
    }
}

/// The result of a command: an exit code on success, or a failure.
pub type CommandResult = Result<ExitCode, Failure>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_fatal_wherever_it_is_in_the_chain() {
        let io = std::io::Error::from_raw_os_error(28);
        let wrapped = anyhow::Error::new(io).context("cannot write capture");
        assert_eq!(Failure::from(wrapped).code, ExitCode::Fatal);
        let other = anyhow::anyhow!("something else");
        assert_eq!(Failure::from(other).code, ExitCode::Failed);
    }
}
