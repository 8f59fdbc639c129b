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
}

impl Failure {
    /// A failure with an explicit code.
    pub fn new(code: ExitCode, error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code,
            error: error.into(),
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
        let code = if needs_a_person(&error) {
            ExitCode::Fatal
        } else {
            ExitCode::Failed
        };
        Failure { code, error }
    }
}

/// Whether an error is one a retry cannot fix: a full disk, a read-only or
/// damaged database, a permission problem.
fn needs_a_person(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io.raw_os_error() == Some(28) // ENOSPC
                || io.kind() == std::io::ErrorKind::PermissionDenied
                || io.kind() == std::io::ErrorKind::ReadOnlyFilesystem;
        }
        if let Some(rusqlite::Error::SqliteFailure(e, _)) = cause.downcast_ref::<rusqlite::Error>()
        {
            use rusqlite::ErrorCode::*;
            return matches!(
                e.code,
                DiskFull
                    | ReadOnly
                    | DatabaseCorrupt
                    | NotADatabase
                    | CannotOpen
                    | PermissionDenied
            );
        }
        false
    })
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
