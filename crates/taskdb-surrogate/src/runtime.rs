//! Finding and loading the ONNX Runtime shared library, once per process.
//!
//! Discovery order: an explicit path → `ORT_DYLIB_PATH` → the provisioned copy in the taskdb cache
//! (`$TASKDB_HOME/onnxruntime/1.31.1/`) → a Python installation's `onnxruntime/capi/`.
//! ONNX Runtime can be initialised only once per process: the first successful load wins, and
//! later requests for another library get a warning naming the one in use.

use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// The ONNX Runtime version this build is made for (the `api-31` feature of `ort`).
pub const ORT_VERSION: &str = "1.31.1";
const ORT_MINOR_PREFIX: &str = "1.31.";
const LIB_NAME: &str = "libonnxruntime.so.1.31.1";

/// Where the library in use was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrtSource {
    /// Passed explicitly by the caller.
    Explicit,
    /// The `ORT_DYLIB_PATH` environment variable.
    EnvVar,
    /// The copy installed by scripts/provision.sh into the taskdb cache.
    Provisioned,
    /// A Python installation's `onnxruntime/capi` directory.
    Python,
}

/// The ONNX Runtime loaded in this process.
#[derive(Clone)]
pub struct OrtRuntime {
    /// Absolute path of the shared library.
    pub path: PathBuf,
    /// Its version string (e.g. `1.31.1`).
    pub version: String,
    /// How it was found.
    pub source: OrtSource,
    pub(crate) env: ort::environment::Environment,
}

impl std::fmt::Debug for OrtRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtRuntime")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("source", &self.source)
            .finish()
    }
}

impl OrtRuntime {
    /// The process's ONNX Runtime environment, for other `ort` sessions in taskdb (e.g. ONNX
    /// classifier adapters): obtain it through [`ort_runtime`] so the same library is used.
    pub fn environment(&self) -> &ort::environment::Environment {
        &self.env
    }
}

static RUNTIME: Mutex<Option<Arc<OrtRuntime>>> = Mutex::new(None);

/// taskdb's cache directory: `$TASKDB_HOME`, else `$XDG_CACHE_HOME/taskdb`, else `~/.cache/taskdb`
/// (the same rule as scripts/provision.sh).
pub fn taskdb_home() -> PathBuf {
    if let Some(h) = std::env::var_os("TASKDB_HOME").filter(|s| !s.is_empty()) {
        return PathBuf::from(h);
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|s| !s.is_empty()) {
        return PathBuf::from(x).join("taskdb");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".cache").join("taskdb")
}

/// The provisioned ONNX Runtime library path (which may not exist).
pub fn provisioned_ort_path() -> PathBuf {
    taskdb_home()
        .join("onnxruntime")
        .join(ORT_VERSION)
        .join(LIB_NAME)
}

/// The provisioned default surrogate directory (which may not exist).
pub fn default_surrogate_dir() -> PathBuf {
    taskdb_home().join("surrogates").join("all-MiniLM-L6-v2")
}

/// Returns the ONNX Runtime in use, loading it on first call. `explicit` (if any) is tried first;
/// once a runtime is loaded, later calls return it, with a warning pushed to `warnings` when an
/// explicit path that differs from the loaded one was requested.
pub fn ort_runtime(explicit: Option<&Path>, warnings: &mut Vec<String>) -> Result<Arc<OrtRuntime>> {
    let mut guard = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(rt) = guard.as_ref() {
        if let Some(p) = explicit {
            let same = std::fs::canonicalize(p).ok() == std::fs::canonicalize(&rt.path).ok();
            if !same {
                warnings.push(format!(
                    "ONNX Runtime is already loaded in this process from {} (it can be loaded only once); ignoring the requested {}",
                    rt.path.display(),
                    p.display()
                ));
            }
        }
        return Ok(rt.clone());
    }
    let rt = Arc::new(discover_and_load(explicit)?);
    *guard = Some(rt.clone());
    Ok(rt)
}

/// The runtime already loaded in this process, if any.
pub fn loaded_runtime() -> Option<Arc<OrtRuntime>> {
    RUNTIME.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn discover_and_load(explicit: Option<&Path>) -> Result<OrtRuntime> {
    let mut tried = Vec::new();
    // Explicit and env-var paths are the user's choice: a bad one is an error, not skipped.
    if let Some(p) = explicit {
        return load_candidate(p, OrtSource::Explicit);
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|s| !s.is_empty()) {
        return load_candidate(Path::new(&p), OrtSource::EnvVar);
    }
    tried.push("ORT_DYLIB_PATH (unset)".to_string());
    let prov = provisioned_ort_path();
    if prov.is_file() {
        return load_candidate(&prov, OrtSource::Provisioned);
    }
    tried.push(format!("{} (absent)", prov.display()));
    for dir in python_capi_dirs(&mut tried) {
        let cand = dir.join(LIB_NAME);
        if cand.is_file() {
            match check_version(&cand) {
                Ok(_) => return load_candidate(&cand, OrtSource::Python),
                Err(e) => tried.push(format!("{} ({e})", cand.display())),
            }
        } else if let Some(other) = find_any_ort(&dir) {
            tried.push(format!(
                "{} (version {}, need {ORT_MINOR_PREFIX}x)",
                other.display(),
                check_version(&other).unwrap_or_else(|e| e.to_string())
            ));
        } else {
            tried.push(format!("{} (no {LIB_NAME})", dir.display()));
        }
    }
    Err(Error::OrtNotFound {
        wanted: ORT_VERSION.to_string(),
        tried,
    })
}

fn find_any_ort(dir: &Path) -> Option<PathBuf> {
    let rd = std::fs::read_dir(dir).ok()?;
    rd.flatten().map(|e| e.path()).find(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("libonnxruntime.so.1."))
    })
}

/// Candidate `onnxruntime/capi` directories of Python installations: what `python3` imports,
/// then common site-packages locations.
fn python_capi_dirs(tried: &mut Vec<String>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import importlib.util as u,os;s=u.find_spec('onnxruntime');print(os.path.dirname(s.origin) if s and s.origin else '')",
        ])
        .stderr(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if s.is_empty() {
                tried.push("python3: no onnxruntime package".to_string());
            } else {
                dirs.push(PathBuf::from(s).join("capi"));
            }
        }
        _ => tried.push("python3 (not runnable)".to_string()),
    }
    // site-packages scan (virtualenv in $VIRTUAL_ENV, user site, system).
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Some(v) = std::env::var_os("VIRTUAL_ENV") {
        roots.push(PathBuf::from(v).join("lib"));
    }
    if let Some(h) = std::env::var_os("HOME") {
        roots.push(PathBuf::from(h).join(".local/lib"));
    }
    roots.push("/usr/local/lib".into());
    roots.push("/usr/lib".into());
    for root in roots {
        let Ok(rd) = std::fs::read_dir(&root) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            if !name.to_string_lossy().starts_with("python3") {
                continue;
            }
            for sp in ["site-packages", "dist-packages"] {
                let d = e.path().join(sp).join("onnxruntime").join("capi");
                if d.is_dir() && !dirs.contains(&d) {
                    dirs.push(d);
                }
            }
        }
    }
    dirs
}

/// Reads the library's version string without initialising `ort` (so a wrong library can still
/// be rejected and another tried).
fn check_version(path: &Path) -> std::result::Result<String, String> {
    // SAFETY: loading ONNX Runtime runs its static initialisers, which are benign; we only call
    // OrtGetApiBase()->GetVersionString, which takes no arguments and returns a static C string.
    unsafe {
        let lib = libloading::Library::new(path).map_err(|e| format!("cannot load: {e}"))?;
        let get: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> = lib
            .get(b"OrtGetApiBase")
            .map_err(|_| "not an ONNX Runtime library (no OrtGetApiBase symbol)".to_string())?;
        let base = get();
        if base.is_null() {
            return Err("OrtGetApiBase returned null".into());
        }
        let v = ((*base).GetVersionString)();
        if v.is_null() {
            return Err("no version string".into());
        }
        let v = CStr::from_ptr(v).to_string_lossy().into_owned();
        // keep the library loaded: ort will dlopen the same file (reference counted).
        std::mem::forget(lib);
        Ok(v)
    }
}

fn load_candidate(path: &Path, source: OrtSource) -> Result<OrtRuntime> {
    let abs = std::fs::canonicalize(path).map_err(|e| Error::OrtLibrary {
        path: path.to_path_buf(),
        reason: format!("does not exist or is unreadable ({e})"),
    })?;
    let version = check_version(&abs).map_err(|reason| Error::OrtLibrary {
        path: abs.clone(),
        reason,
    })?;
    if !version.starts_with(ORT_MINOR_PREFIX) {
        return Err(Error::OrtLibrary {
            path: abs,
            reason: format!("version {version}, but this build needs {ORT_MINOR_PREFIX}x"),
        });
    }
    let builder = ort::init_from(&abs).map_err(|e| Error::OrtLibrary {
        path: abs.clone(),
        reason: e.to_string(),
    })?;
    let env = builder
        .with_name("taskdb")
        .with_telemetry(false)
        .build()
        .map_err(|e| Error::ort("creating the ONNX Runtime environment", e))?;
    // ONNX Runtime logs to stderr by default; the library never prints, errors come back as values.
    env.set_log_level(ort::logging::LogLevel::Fatal);
    Ok(OrtRuntime {
        path: abs,
        version,
        source,
        env,
    })
}
