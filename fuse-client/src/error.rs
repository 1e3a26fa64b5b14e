//! The filesystem's error type and its errno: the one place a failure
//! becomes an errno.

use reqwest::StatusCode;

#[derive(Debug, thiserror::Error)]
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
    #[error("invalid argument")]
    Invalid,
    #[error("read-only file system")]
    ReadOnly,
    #[error("bad file handle")]
    BadHandle,
    #[error("i/o error: {0}")]
    Io(String),
}

impl FsError {
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => FsError::NotFound,
            StatusCode::FORBIDDEN => FsError::Denied,
            StatusCode::PRECONDITION_FAILED => FsError::Exists,
            s => FsError::Io(format!("server answered {s}")),
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
            FsError::Invalid => libc::EINVAL,
            FsError::ReadOnly => libc::EROFS,
            FsError::BadHandle => libc::EBADF,
            FsError::Io(_) => libc::EIO,
        }
    }
}
