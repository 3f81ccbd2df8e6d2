//! Matmul autotuning (`MatmulKernel::Tuned`, the default on GPUs): the first f32 product of each
//! shape class runs every candidate kernel on the real operands, times them (timestamp
//! queries where the adapter has them, else wall time around a sync), and keeps the fastest.
//! Convolutions are tuned alike where there is a choice (an adapter with subgroups of a fixed
//! size can run both the implicit GEMM and the packed-texture path): per pass and GEMM size.
//! Choices live in a text file per adapter and driver version, so a later process measures
//! only the classes it has not seen. Measuring is a sync point (a few submits and waits), once
//! per class; products of a known class record like any other op.
//!
//! The file is a cache: a line it cannot use is reported (stderr and [`TuningReport`]) and its
//! class measured again; a file it cannot write leaves the choices in memory. Writes go to a
//! temporary file renamed over the old one.

use super::context::Context;
use super::matmul::{run, vec4_aligned, Product};
use super::storage::WgpuStorage;
use super::timer::time_on_device;
use crate::error::Result;
use crate::ops::{Conv2dShape, MatmulShape};
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

/// The two ways a device can run a convolution pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConvKernel {
    /// conv.wgsl: implicit GEMM through workgroup memory, no unfolded buffer.
    ImplicitGemm,
    /// conv_texture.wgsl: the unfolded operand packed into the texture matmul's textures.
    Texture,
}

/// The three passes of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConvPass {
    Forward,
    BackwardInput,
    BackwardWeight,
}

impl ConvPass {
    const ALL: [ConvPass; 3] = [
        ConvPass::Forward,
        ConvPass::BackwardInput,
        ConvPass::BackwardWeight,
    ];

    fn name(self) -> &'static str {
        match self {
            ConvPass::Forward => "forward",
            ConvPass::BackwardInput => "backward-input",
            ConvPass::BackwardWeight => "backward-weight",
        }
    }
}

/// Convolutions that share a class share a kernel: the same pass, and the pass's GEMM
/// (rows × columns × depth, as conv.wgsl's header defines them) rounded up to powers of two.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConvClass {
    pub pass: ConvPass,
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

impl ConvClass {
    pub fn of(pass: ConvPass, s: &Conv2dShape) -> ConvClass {
        let out_pixels = s.batch * s.out_height() * s.out_width();
        let taps = s.kernel_h * s.kernel_w;
        let (m, n, k) = match pass {
            ConvPass::Forward => (out_pixels, s.out_channels, s.patch_len()),
            ConvPass::BackwardInput => (
                s.batch * s.height * s.width,
                s.in_channels,
                s.out_channels * taps,
            ),
            ConvPass::BackwardWeight => (s.out_channels, s.patch_len(), out_pixels),
        };
        ConvClass {
            pass,
            m: m.next_power_of_two(),
            n: n.next_power_of_two(),
            k: k.next_power_of_two(),
        }
    }
}

impl fmt::Display for ConvClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (pass, m, n, k) = (self.pass.name(), self.m, self.n, self.k);
        write!(f, "conv {pass} M≤{m} N≤{n} K≤{k}")
    }
}

/// The convolution kernel chosen for a class and its time on the pass it was measured on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TunedConv {
    pub class: ConvClass,
    pub kernel: ConvKernel,
    pub seconds: f64,
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
    /// The convolution kernels measured (none where there is no choice) and the choices.
    pub conv_candidates: Vec<ConvKernel>,
    pub convs: Vec<TunedConv>,
    pub problems: Vec<String>,
}

pub(crate) struct Tuner {
    file: Option<PathBuf>,
    adapter: String,
    candidates: Vec<MatmulKernel>,
    table: Mutex<BTreeMap<ShapeClass, TunedClass>>,
    conv_candidates: Vec<ConvKernel>,
    conv_table: Mutex<BTreeMap<ConvClass, TunedConv>>,
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
            // The texture path needs the subgroup kernel's fixed subgroup size.
            conv_candidates: if subgroups {
                vec![ConvKernel::ImplicitGemm, ConvKernel::Texture]
            } else {
                Vec::new()
            },
            conv_table: Mutex::new(BTreeMap::new()),
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
            conv_candidates: self.conv_candidates.clone(),
            convs: self.lock_convs().values().copied().collect(),
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

    fn lock_convs(&self) -> std::sync::MutexGuard<'_, BTreeMap<ConvClass, TunedConv>> {
        self.conv_table.lock().unwrap_or_else(|p| p.into_inner())
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

    /// The convolution kernel for this pass's class, measuring `run` with each candidate the
    /// first time (the implicit GEMM where the device has no choice).
    pub(crate) fn choose_conv(
        &self,
        ctx: &Arc<Context>,
        class: ConvClass,
        run: &dyn Fn(ConvKernel) -> Result<WgpuStorage>,
    ) -> Result<ConvKernel> {
        if self.conv_candidates.is_empty() {
            return Ok(ConvKernel::ImplicitGemm);
        }
        if let Some(tuned) = self.lock_convs().get(&class) {
            return Ok(tuned.kernel);
        }
        let time = |kernel| time_work(ctx, || run(kernel));
        let (kernel, seconds) = self.fastest(&class, &self.conv_candidates, time)?;
        let tuned = TunedConv {
            class,
            kernel,
            seconds,
        };
        self.lock_convs().insert(class, tuned);
        self.save();
        Ok(kernel)
    }

    /// Times every candidate on the product.
    fn measure(
        &self,
        ctx: &Arc<Context>,
        product: &Product<'_>,
        class: ShapeClass,
    ) -> Result<TunedClass> {
        let time = |kernel| time_work(ctx, || run(ctx, product, kernel));
        let (kernel, seconds) = self.fastest(&class, &self.candidates, time)?;
        Ok(TunedClass {
            class,
            kernel,
            seconds,
        })
    }

    /// The fastest candidate and its seconds: the fastest of three runs after a warm-up, or of
    /// one for slow candidates. A candidate that fails (a driver that cannot build it) is
    /// reported and skipped; if every one fails, the first failure is the error.
    fn fastest<K: Copy + fmt::Debug>(
        &self,
        class: &dyn fmt::Display,
        candidates: &[K],
        time: impl Fn(K) -> Result<Duration>,
    ) -> Result<(K, f64)> {
        let mut best: Option<(K, f64)> = None;
        let mut first_error = None;
        for &kernel in candidates {
            let timed = (|| {
                let warm_up = time(kernel)?;
                let runs = if warm_up > SLOW_RUN { 1 } else { 3 };
                let mut fastest = Duration::MAX;
                for _ in 0..runs {
                    fastest = fastest.min(time(kernel)?);
                }
                Ok(fastest)
            })();
            match timed {
                Ok(time) => {
                    let seconds = time.as_secs_f64();
                    if best.is_none_or(|(_, b)| seconds < b) {
                        best = Some((kernel, seconds));
                    }
                }
                Err(e) => {
                    self.problem(format!("the {kernel:?} kernel failed on {class}: {e}"));
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
            if line.starts_with("conv ") {
                drop(table);
                match self.parse_conv_line(line) {
                    Ok(tuned) => {
                        self.lock_convs().insert(tuned.class, tuned);
                    }
                    Err(reason) => self.problem(format!(
                        "{} line {}: {reason}; that class will be measured again",
                        file.display(),
                        index + 1
                    )),
                }
                table = self.lock_table();
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
        let size = |i: usize| power_of_two(&fields, i);
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
        let seconds = seconds(&fields, 8)?;
        Ok(TunedClass {
            class,
            kernel,
            seconds,
        })
    }

    /// `conv pass m n k kernel seconds`, the pass as `ConvPass::name` writes it.
    fn parse_conv_line(&self, line: &str) -> std::result::Result<TunedConv, String> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != 7 {
            return Err(format!(
                "expected 7 fields (conv pass m n k kernel seconds), found {}",
                fields.len()
            ));
        }
        let pass = ConvPass::ALL
            .into_iter()
            .find(|p| p.name() == fields[1])
            .ok_or_else(|| {
                format!(
                    "field 2 is {:?}, expected forward, backward-input or backward-weight",
                    fields[1]
                )
            })?;
        let size = |i: usize| power_of_two(&fields, i);
        let class = ConvClass {
            pass,
            m: size(2)?,
            n: size(3)?,
            k: size(4)?,
        };
        let kernel = self
            .conv_candidates
            .iter()
            .copied()
            .find(|k| format!("{k:?}") == fields[5])
            .ok_or_else(|| {
                format!(
                    "kernel {:?} is not one of this device's convolution candidates",
                    fields[5]
                )
            })?;
        let seconds = seconds(&fields, 6)?;
        Ok(TunedConv {
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
        let convs = self.lock_convs();
        if !convs.is_empty() {
            text.push_str("# conv pass m n k kernel seconds\n");
        }
        for t in convs.values() {
            let c = t.class;
            text.push_str(&format!(
                "conv {} {} {} {} {:?} {:e}\n",
                c.pass.name(),
                c.m,
                c.n,
                c.k,
                t.kernel,
                t.seconds
            ));
        }
        drop(convs);
        if let Err(e) = write_atomically(file, &text) {
            self.unwritable.store(true, Ordering::Relaxed);
            self.problem(format!(
                "cannot write the matmul tuning file {}: {e}; keeping the choices in memory",
                file.display()
            ));
        }
    }
}

/// Field `i` of a tuning line as a power of two (a class's rounded size).
fn power_of_two(fields: &[&str], i: usize) -> std::result::Result<usize, String> {
    match fields[i].parse::<usize>() {
        Ok(v) if v.is_power_of_two() => Ok(v),
        _ => Err(format!(
            "field {} is {:?}, expected a power of two",
            i + 1,
            fields[i]
        )),
    }
}

/// Field `i` of a tuning line as a measured time in seconds.
fn seconds(fields: &[&str], i: usize) -> std::result::Result<f64, String> {
    match fields[i].parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(s),
        _ => Err(format!(
            "field {} is {:?}, expected seconds",
            i + 1,
            fields[i]
        )),
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

/// The time of one run of `work`: device time where the adapter has timestamps, else wall
/// time from an idle device to the end of the run.
fn time_work(ctx: &Arc<Context>, work: impl Fn() -> Result<WgpuStorage>) -> Result<Duration> {
    if ctx.timestamps.is_some() {
        let (_, elapsed) = time_on_device(ctx, &work)?;
        if let Some(elapsed) = elapsed {
            return Ok(elapsed);
        }
    }
    ctx.sync()?;
    let start = Instant::now();
    let output = work()?;
    ctx.sync()?;
    drop(output);
    Ok(start.elapsed())
}
