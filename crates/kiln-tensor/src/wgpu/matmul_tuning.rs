//! Matmul autotuning (`MatmulKernel::Tuned`, the default on GPUs): the first f32 product of each
//! shape class runs every candidate kernel on the real operands, times them (timestamp
//! queries where the adapter has them, else wall time around a sync), and keeps the fastest.
//! Choices live in a text file per adapter and driver version, so a later process measures
//! only the classes it has not seen. Measuring is a sync point (a few submits and waits), once
//! per class; products of a known class record like any other op.
//!
//! The file is a cache: a line it cannot use is reported (stderr and [`TuningReport`]) and its
//! class measured again; a file it cannot write leaves the choices in memory. Writes go to a
//! temporary file renamed over the old one.

use super::context::Context;
use super::matmul::{run, vec4_aligned, Product};
use super::timer::time_on_device;
use crate::error::Result;
use crate::ops::MatmulShape;
use crate::wgpu::MatmulKernel;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Changes when the kernels change, so choices measured for older kernels are not reused.
const FORMAT: &str = "kiln-matmul-tuning-1";

/// A candidate whose first run takes longer than this is timed once more, not three times.
const SLOW_RUN: Duration = Duration::from_millis(20);

/// Products that share a class share a kernel: the same transposes, batching and vec4
/// alignment, and M, N and K rounded up to powers of two.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShapeClass {
    pub trans_a: bool,
    pub trans_b: bool,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub batched: bool,
    pub vec4_aligned: bool,
}

impl ShapeClass {
    pub fn of(s: &MatmulShape) -> ShapeClass {
        ShapeClass {
            trans_a: s.trans_a,
            trans_b: s.trans_b,
            m: s.m.next_power_of_two(),
            n: s.n.next_power_of_two(),
            k: s.k.next_power_of_two(),
            batched: s.batch > 1,
            vec4_aligned: vec4_aligned(s),
        }
    }
}

impl fmt::Display for ShapeClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = if self.trans_a { "Aᵀ" } else { "A" };
        let b = if self.trans_b { "Bᵀ" } else { "B" };
        write!(f, "{a}·{b} M≤{} N≤{} K≤{}", self.m, self.n, self.k)?;
        if self.batched {
            write!(f, " batched")?;
        }
        if !self.vec4_aligned {
            write!(f, " unaligned")?;
        }
        Ok(())
    }
}

/// The kernel chosen for a class and the time it took on the product it was measured on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TunedClass {
    pub class: ShapeClass,
    pub kernel: MatmulKernel,
    pub seconds: f64,
}

/// What the tuner knows: its file, its choices, and the problems it met with the file.
#[derive(Clone, Debug)]
pub struct TuningReport {
    pub file: Option<PathBuf>,
    pub candidates: Vec<MatmulKernel>,
    pub classes: Vec<TunedClass>,
    pub problems: Vec<String>,
}

pub(crate) struct Tuner {
    file: Option<PathBuf>,
    adapter: String,
    candidates: Vec<MatmulKernel>,
    table: Mutex<BTreeMap<ShapeClass, TunedClass>>,
    problems: Mutex<Vec<String>>,
    measured: AtomicU64,
    /// Set when a write failed: the file is not tried again in this process.
    unwritable: AtomicBool,
}

/// `$KILN_CACHE_DIR`, else `$XDG_CACHE_HOME/kiln`, else `$HOME/.cache/kiln`.
pub(crate) fn default_tuning_dir() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    var("KILN_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| var("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("kiln")))
        .or_else(|| var("HOME").map(|d| PathBuf::from(d).join(".cache").join("kiln")))
}

/// The tuning file's name: the adapter, its driver and version, and the backend, as one
/// lower-case word of letters, digits and dashes.
fn file_name(info: &wgpu::AdapterInfo) -> String {
    let raw = format!(
        "matmul-{}-{}-{}-{:?}-{:x}-{:x}",
        info.name, info.driver, info.driver_info, info.backend, info.vendor, info.device
    );
    let mut slug = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug: String = slug.trim_end_matches('-').chars().take(180).collect();
    format!("{slug}.txt")
}

fn kernel_name(kernel: MatmulKernel) -> String {
    format!("{kernel:?}")
}

impl Tuner {
    /// A tuner over the tiled shapes (and the subgroup kernel when the device can run it),
    /// starting from the choices in `dir`'s file for this adapter and driver, if any.
    pub(crate) fn open(dir: Option<PathBuf>, info: &wgpu::AdapterInfo, subgroups: bool) -> Tuner {
        let mut candidates = vec![
            MatmulKernel::Tiled,
            MatmulKernel::Tiled32,
            MatmulKernel::Tiled128,
        ];
        if subgroups {
            candidates.push(MatmulKernel::Subgroup);
        }
        let tuner = Tuner {
            file: dir.map(|d| d.join(file_name(info))),
            adapter: format!(
                "{} ({:?}, {} {})",
                info.name, info.backend, info.driver, info.driver_info
            ),
            candidates,
            table: Mutex::new(BTreeMap::new()),
            problems: Mutex::new(Vec::new()),
            measured: AtomicU64::new(0),
            unwritable: AtomicBool::new(false),
        };
        tuner.load();
        tuner
    }

    /// Shape classes measured in this process.
    pub(crate) fn measured(&self) -> u64 {
        self.measured.load(Ordering::Relaxed)
    }

    pub(crate) fn report(&self) -> TuningReport {
        TuningReport {
            file: self.file.clone(),
            candidates: self.candidates.clone(),
            classes: self.lock_table().values().copied().collect(),
            problems: self
                .problems
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    fn lock_table(&self) -> std::sync::MutexGuard<'_, BTreeMap<ShapeClass, TunedClass>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn problem(&self, text: String) {
        eprintln!("kiln: {text}");
        self.problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(text);
    }

    /// The kernel for this product's class, measuring the candidates on it the first time.
    pub(crate) fn choose(&self, ctx: &Arc<Context>, product: &Product<'_>) -> Result<MatmulKernel> {
        let class = ShapeClass::of(product.shape);
        if let Some(tuned) = self.lock_table().get(&class) {
            return Ok(tuned.kernel);
        }
        let tuned = self.measure(ctx, product, class)?;
        self.measured.fetch_add(1, Ordering::Relaxed);
        self.lock_table().insert(class, tuned);
        self.save();
        Ok(tuned.kernel)
    }

    /// Times every candidate on the product (the fastest of three runs after a warm-up, or of
    /// one for slow candidates). A candidate that fails (a driver that cannot build it) is
    /// reported and skipped; if every one fails, the first failure is the error.
    fn measure(
        &self,
        ctx: &Arc<Context>,
        product: &Product<'_>,
        class: ShapeClass,
    ) -> Result<TunedClass> {
        let mut best: Option<TunedClass> = None;
        let mut first_error = None;
        for &kernel in &self.candidates {
            let timed = (|| {
                let warm_up = time_run(ctx, product, kernel)?;
                let runs = if warm_up > SLOW_RUN { 1 } else { 3 };
                let mut fastest = Duration::MAX;
                for _ in 0..runs {
                    fastest = fastest.min(time_run(ctx, product, kernel)?);
                }
                Ok(fastest)
            })();
            match timed {
                Ok(time) => {
                    let seconds = time.as_secs_f64();
                    if best.is_none_or(|b| seconds < b.seconds) {
                        best = Some(TunedClass {
                            class,
                            kernel,
                            seconds,
                        });
                    }
                }
                Err(e) => {
                    self.problem(format!("the {kernel:?} matmul failed on {class}: {e}"));
                    first_error.get_or_insert(e);
                }
            }
        }
        match (best, first_error) {
            (Some(best), _) => Ok(best),
            (None, Some(e)) => Err(e),
            (None, None) => unreachable!("the tuner always has candidates"),
        }
    }

    /// Reads the choices from the file; lines it cannot use are reported and skipped.
    fn load(&self) {
        let Some(file) = &self.file else { return };
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                self.problem(format!(
                    "cannot read the matmul tuning file {}: {e}; measuring again",
                    file.display()
                ));
                return;
            }
        };
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, header)) if header.split_whitespace().next() == Some(FORMAT) => {}
            _ => {
                self.problem(format!(
                    "{} line 1: expected a header starting with {FORMAT:?}; measuring again",
                    file.display()
                ));
                return;
            }
        }
        let mut table = self.lock_table();
        for (index, line) in lines {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            match self.parse_line(line) {
                Ok(tuned) => {
                    table.insert(tuned.class, tuned);
                }
                Err(reason) => {
                    drop(table);
                    self.problem(format!(
                        "{} line {}: {reason}; that class will be measured again",
                        file.display(),
                        index + 1
                    ));
                    table = self.lock_table();
                }
            }
        }
    }

    /// `trans_a trans_b m n k batched vec4_aligned kernel seconds`, flags as 0 or 1.
    fn parse_line(&self, line: &str) -> std::result::Result<TunedClass, String> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != 9 {
            return Err(format!(
                "expected 9 fields (trans_a trans_b m n k batched vec4_aligned kernel seconds), found {}",
                fields.len()
            ));
        }
        let flag = |i: usize| match fields[i] {
            "0" => Ok(false),
            "1" => Ok(true),
            other => Err(format!("field {} is {other:?}, expected 0 or 1", i + 1)),
        };
        let size = |i: usize| match fields[i].parse::<usize>() {
            Ok(v) if v.is_power_of_two() => Ok(v),
            _ => Err(format!(
                "field {} is {:?}, expected a power of two",
                i + 1,
                fields[i]
            )),
        };
        let class = ShapeClass {
            trans_a: flag(0)?,
            trans_b: flag(1)?,
            m: size(2)?,
            n: size(3)?,
            k: size(4)?,
            batched: flag(5)?,
            vec4_aligned: flag(6)?,
        };
        let kernel = self
            .candidates
            .iter()
            .copied()
            .find(|&k| kernel_name(k) == fields[7])
            .ok_or_else(|| {
                let names: Vec<String> = self.candidates.iter().map(|&k| kernel_name(k)).collect();
                format!(
                    "kernel {:?} is not one of this device's candidates ({})",
                    fields[7],
                    names.join(", ")
                )
            })?;
        let seconds = match fields[8].parse::<f64>() {
            Ok(s) if s.is_finite() && s >= 0.0 => s,
            _ => return Err(format!("field 9 is {:?}, expected seconds", fields[8])),
        };
        Ok(TunedClass {
            class,
            kernel,
            seconds,
        })
    }

    /// Writes every choice to a temporary file and renames it over the tuning file.
    fn save(&self) {
        let Some(file) = &self.file else { return };
        if self.unwritable.load(Ordering::Relaxed) {
            return;
        }
        let mut text = format!("{FORMAT} {}\n", self.adapter);
        text.push_str("# trans_a trans_b m n k batched vec4_aligned kernel seconds\n");
        for t in self.lock_table().values() {
            let c = t.class;
            text.push_str(&format!(
                "{} {} {} {} {} {} {} {} {:e}\n",
                c.trans_a as u8,
                c.trans_b as u8,
                c.m,
                c.n,
                c.k,
                c.batched as u8,
                c.vec4_aligned as u8,
                kernel_name(t.kernel),
                t.seconds
            ));
        }
        if let Err(e) = write_atomically(file, &text) {
            self.unwritable.store(true, Ordering::Relaxed);
            self.problem(format!(
                "cannot write the matmul tuning file {}: {e}; keeping the choices in memory",
                file.display()
            ));
        }
    }
}

fn write_atomically(file: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let temporary = file.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, file).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}

/// The time of one run of `kernel` on the product: device time where the adapter has
/// timestamps, else wall time from an idle device to the end of the run.
fn time_run(ctx: &Arc<Context>, product: &Product<'_>, kernel: MatmulKernel) -> Result<Duration> {
    if ctx.timestamps.is_some() {
        let (_, elapsed) = time_on_device(ctx, || run(ctx, product, kernel))?;
        if let Some(elapsed) = elapsed {
            return Ok(elapsed);
        }
    }
    ctx.sync()?;
    let start = Instant::now();
    let output = run(ctx, product, kernel)?;
    ctx.sync()?;
    drop(output);
    Ok(start.elapsed())
}
