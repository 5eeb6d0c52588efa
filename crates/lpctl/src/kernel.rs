//! Everything that changes the running kernel goes through [`Kernel`]:
//! sysfs attribute writes and the module syscalls. Reads go through
//! [`crate::sysfs::Sys`]. Tests implement [`Kernel`] on a fake tree.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

pub trait Kernel {
    /// Write `value` to a sysfs attribute in one `write(2)`.
    fn write_attr(&mut self, path: &Path, value: &str) -> io::Result<()>;
    /// `finit_module(fd, params, 0)`.
    fn load_module(&mut self, path: &Path, params: &str) -> io::Result<()>;
    /// `delete_module(name, O_NONBLOCK)`.
    fn delete_module(&mut self, name: &str) -> io::Result<()>;
    /// Whether we may load/unload modules (effective uid 0).
    fn privileged(&self) -> bool;
}

/// The real thing: libc syscalls and files under `/`.
#[derive(Debug, Default)]
pub struct RealKernel;

impl Kernel for RealKernel {
    fn write_attr(&mut self, path: &Path, value: &str) -> io::Result<()> {
        let mut f = OpenOptions::new().write(true).open(path)?;
        let n = f.write(value.as_bytes())?;
        if n != value.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short write to {}", path.display()),
            ));
        }
        Ok(())
    }

    fn load_module(&mut self, path: &Path, params: &str) -> io::Result<()> {
        let file = File::open(path)?;
        let params = CString::new(params)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in module params"))?;
        // A compressed module: decompressed here and given to init_module(2), as kmod does
        // (finit_module only decompresses on kernels with CONFIG_MODULE_DECOMPRESS).
        let data = std::fs::read(path)?;
        if let Some(image) = crate::compress::decompress(&data)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.message))?
        {
            // SAFETY: `image` and `params` are alive across the call; the length is the
            // buffer's.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_init_module,
                    image.as_ptr(),
                    image.len() as libc::c_ulong,
                    params.as_ptr(),
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            return Ok(());
        }
        // SAFETY: the fd is open for the duration of the call and `params`
        // is a NUL-terminated string that outlives it.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_finit_module,
                file.as_raw_fd() as libc::c_long,
                params.as_ptr(),
                0 as libc::c_long,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn delete_module(&mut self, name: &str) -> io::Result<()> {
        let name = CString::new(name)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in module name"))?;
        // SAFETY: `name` is a NUL-terminated string alive across the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_delete_module,
                name.as_ptr(),
                libc::O_NONBLOCK as libc::c_long,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn privileged(&self) -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }
}
