//! floor: the smallest reasonable PID-1 init in std Rust, as a reference
//! point for the benchmark (what std + musl cost before any features).
//! NOT envinit. Usage: floor [--] COMMAND [ARG...]
//! Blocks all signals, spawns the child, then loops on sigwait: SIGCHLD
//! reaps in a loop (waitpid(-1, WNOHANG)) and exits with the child's code
//! when it is reaped; any other signal is forwarded to the child.
use std::os::raw::c_int;

#[repr(C)]
struct SigSet([u64; 16]);

unsafe extern "C" {
    fn sigfillset(set: *mut SigSet) -> c_int;
    fn sigprocmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
    fn sigwait(set: *const SigSet, sig: *mut c_int) -> c_int;
    fn kill(pid: c_int, sig: c_int) -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
}

fn main() {
    let mut args: Vec<_> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "--") {
        args.remove(0);
    }
    if args.is_empty() {
        std::process::exit(64);
    }
    let mut set = SigSet([0; 16]);
    // SAFETY: plain libc calls on a properly sized, initialised sigset_t.
    unsafe {
        sigfillset(&mut set);
        sigprocmask(0 /* SIG_BLOCK */, &set, std::ptr::null_mut());
    }
    // std resets the child's signal mask to empty before exec.
    let child = match std::process::Command::new(&args[0]).args(&args[1..]).spawn() {
        Ok(c) => c.id() as c_int,
        Err(_) => std::process::exit(127),
    };
    loop {
        let mut sig: c_int = 0;
        // SAFETY: as above.
        unsafe { sigwait(&set, &mut sig) };
        if sig != 17 /* SIGCHLD */ {
            unsafe { kill(child, sig) };
            continue;
        }
        loop {
            let mut st: c_int = 0;
            let pid = unsafe { waitpid(-1, &mut st, 1 /* WNOHANG */) };
            if pid <= 0 {
                break;
            }
            if pid == child {
                let code = if st & 0x7f == 0 { (st >> 8) & 0xff } else { 128 + (st & 0x7f) };
                std::process::exit(code);
            }
        }
    }
}
