//! The filesystem's error type and its errno: the one place a failure
//! becomes an errno, and where S3 answers become failures.

use reqwest::StatusCode;

#[derive(Debug, Clone, thiserror::Error)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("file exists")]
    Exists,
    #[error("directory not empty")]
    NotEmpty,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("name too long")]
    NameTooLong,
    #[error("permission denied by the server")]
    Denied,
    #[error("operation not permitted")]
    NotPermitted,
    #[error("invalid argument")]
    Invalid,
    #[error("read-only file system")]
    ReadOnly,
    #[error("bad file handle")]
    BadHandle,
    #[error("no such extended attribute")]
    NoXattr,
    #[error("operation not supported")]
    NotSupported,
    #[error("buffer too small")]
    Range,
    #[error("no space left on the store")]
    NoSpace,
    #[error("the object changed on the store since it was opened")]
    Stale,
    #[error("file too large")]
    TooBig,
    #[error("the lock is held by another owner")]
    WouldBlock,
    #[error("interrupted while waiting for a lock")]
    Interrupted,
    #[error("the store keeps no locks")]
    NoLocks,
    #[error("i/o error: {0}")]
    Io(String),
}

impl FsError {
    /// The failure an S3 error answer stands for.
    pub fn from_s3(status: StatusCode, code: &str) -> Self {
        match (status, code) {
            (_, "NoSuchKey" | "NoSuchVersion") | (StatusCode::NOT_FOUND, _) => FsError::NotFound,
            (_, "KeyTooLongError") => FsError::NameTooLong,
            (_, "EntityTooLarge") => FsError::TooBig,
            (_, "AccessDenied" | "SignatureDoesNotMatch" | "InvalidAccessKeyId")
            | (StatusCode::FORBIDDEN, _) => FsError::Denied,
            (StatusCode::INSUFFICIENT_STORAGE, _) => FsError::NoSpace,
            (StatusCode::PRECONDITION_FAILED, _) => FsError::Stale,
            (s, c) => FsError::Io(format!("server answered {s} {c}")),
        }
    }

    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::Exists => libc::EEXIST,
            FsError::NotEmpty => libc::ENOTEMPTY,
            FsError::NotDir => libc::ENOTDIR,
            FsError::IsDir => libc::EISDIR,
            FsError::NameTooLong => libc::ENAMETOOLONG,
            FsError::Denied => libc::EACCES,
            FsError::NotPermitted => libc::EPERM,
            FsError::Invalid => libc::EINVAL,
            FsError::ReadOnly => libc::EROFS,
            FsError::BadHandle => libc::EBADF,
            FsError::NoXattr => libc::ENODATA,
            FsError::NotSupported => libc::EOPNOTSUPP,
            FsError::Range => libc::ERANGE,
            FsError::NoSpace => libc::ENOSPC,
            FsError::Stale => libc::ESTALE,
            FsError::TooBig => libc::EFBIG,
            FsError::WouldBlock => libc::EAGAIN,
            FsError::Interrupted => libc::EINTR,
            FsError::NoLocks => libc::ENOLCK,
            FsError::Io(_) => libc::EIO,
        }
    }
}

impl From<std::io::Error> for FsError {
    fn from(e: std::io::Error) -> Self {
        match e.raw_os_error() {
            Some(libc::ENOSPC) => FsError::NoSpace,
            _ => FsError::Io(e.to_string()),
        }
    }
}
