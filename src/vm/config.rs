//! The image config applied at boot: the JSON `docker image inspect`
//! printed, read from a regular file only, turned by [`crate::image::plan`]
//! into envinit's argument words, the environment and the working
//! directory.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use nix::libc;

use super::machine::make_dirs;
use super::{Booted, DEFAULT_IMAGE_CONFIG, DEFAULT_PATH, getenv, set_env};
use crate::image;
use crate::options;

/// Reads the image config (if any) and applies it: the environment (the
/// image's `Env` under the kernel's variables, a default PATH) and the
/// working directory. Returns envinit's argument words. (It runs before the
/// settings are read: the image config decides what they are. So the two
/// variables it needs, `ENVINIT_IMAGE_CONFIG` and whether the kernel gave
/// `ENVINIT_USER`, are looked up in the raw environment.)
#[inline(never)]
pub(super) fn apply_image_config(args: Vec<OsString>) -> Result<Booted, String> {
    let mut booted = Booted::default();
    let path = options::leading_value(&args, "image-config")
        .or_else(|| getenv(c"ENVINIT_IMAGE_CONFIG"))
        .map(PathBuf::from)
        .or_else(|| {
            let default = Path::new(DEFAULT_IMAGE_CONFIG);
            default.exists().then(|| default.to_path_buf())
        });
    match path {
        None => booted.args = args,
        Some(path) => {
            let config = read_image_config(&path)?;
            let plan = image::plan(&config, &args, getenv_str, is_envinit)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            for (key, value) in &plan.env {
                set_env(key, value);
            }
            // User is --user (ENVINIT_USER), unless the kernel gave one.
            if let Some(user) = &plan.user {
                if getenv(c"ENVINIT_USER").is_none() {
                    set_env("ENVINIT_USER", user);
                }
            }
            if let Some(dir) = &plan.working_dir {
                make_dirs(dir);
                std::env::set_current_dir(dir).map_err(|e| {
                    format!("cannot enter WorkingDir {dir}: {}", crate::exit::reason(&e))
                })?;
            }
            booted.hostname = plan.hostname;
            booted.stop_signal = plan.stop_signal;
            booted.args = plan.args;
        }
    }
    if getenv(c"PATH").is_none() {
        set_env("PATH", DEFAULT_PATH);
    }
    Ok(booted)
}

#[inline(never)]
fn getenv_str(key: &str) -> Option<String> {
    std::env::var_os(key).map(|v| v.to_string_lossy().into_owned())
}

/// Is the Entrypoint program envinit itself (by name, or this very file)?
#[inline(never)]
fn is_envinit(program: &str) -> bool {
    Path::new(program).file_name() == Some("envinit".as_ref())
        || std::fs::read_link("/proc/self/exe").is_ok_and(|me| me == Path::new(program))
}

/// Reads and parses the image config. Only a regular file is read: it is
/// checked before the open, and the open cannot block (a FIFO would hold
/// the boot forever) or take a terminal as envinit's.
#[inline(never)]
fn read_image_config(path: &Path) -> Result<image::ImageConfig, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let cannot = |e: std::io::Error| {
        format!(
            "cannot read the image config {}: {}",
            path.display(),
            crate::exit::reason(&e)
        )
    };
    let not_a_file = |kind: std::fs::FileType| {
        format!(
            "{}: the image config is {}, not a regular file: give the file `docker image inspect --format '{{{{json .Config}}}}'` wrote",
            path.display(),
            file_kind(kind)
        )
    };
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if !meta.is_file() {
        return Err(not_a_file(meta.file_type()));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(cannot)?;
    // Replaced between the two looks: check what was opened.
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(not_a_file(meta.file_type()));
    }
    let mut bytes = Vec::new();
    file.take(image::MAX_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > image::MAX_SIZE {
        return Err(format!(
            "{}: the image config is larger than 1 MiB",
            path.display()
        ));
    }
    image::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// What a file that is not a regular file is, for messages.
#[inline(never)]
fn file_kind(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_config_that_is_not_a_regular_file_is_refused_without_blocking() {
        let dir = std::env::temp_dir().join(format!("envinit-vm-image-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("image.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        // On a thread, so that a read that blocks fails the test instead
        // of hanging it.
        let (done, result) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || done.send(read_image_config(&path)).unwrap());
        let err = result
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("reading a FIFO must not block")
            .unwrap_err();
        assert_eq!(
            err,
            format!(
                "{}: the image config is a FIFO, not a regular file: give the file `docker image inspect --format '{{{{json .Config}}}}'` wrote",
                fifo.display()
            )
        );
        let err = read_image_config(&dir).unwrap_err();
        assert!(err.contains("is a directory, not a regular file"), "{err}");
        let err = read_image_config(&dir.join("missing")).unwrap_err();
        assert!(err.starts_with("cannot read the image config "), "{err}");
        let json = dir.join("ok.json");
        std::fs::write(&json, r#"{"Cmd":["a\u0000"]}"#).unwrap();
        let err = read_image_config(&json).unwrap_err();
        assert!(
            err.starts_with(&format!("{}: line 1 column 11: Cmd: ", json.display())),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
