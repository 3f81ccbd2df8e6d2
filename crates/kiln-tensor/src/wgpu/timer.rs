//! Device timing with timestamp queries: a timestamp is written into the pending command
//! encoder before and after the work being timed, the pair is resolved into a buffer, read
//! back, and scaled by the queue's timestamp period. The result is the GPU's own clock, free of
//! the host's submit, wait and readback time; adapters without `TIMESTAMP_QUERY` (and
//! `TIMESTAMP_QUERY_INSIDE_ENCODERS`) time nothing and callers fall back to wall time.

use super::context::Context;
use crate::error::{KilnError, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The features a device needs for `Timestamps`.
pub(crate) const TIMESTAMP_FEATURES: wgpu::Features =
    wgpu::Features::TIMESTAMP_QUERY.union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS);

/// A query set of two timestamps (start, end) and the buffers that carry them to the host.
pub(crate) struct Timestamps {
    pub query_set: wgpu::QuerySet,
    /// Where the query set is resolved (QUERY_RESOLVE) and the mappable copy of it.
    pub resolved: wgpu::Buffer,
    pub readable: wgpu::Buffer,
    /// Nanoseconds per timestamp tick.
    pub period_ns: f64,
}

/// Bytes of the two resolved timestamps.
pub(crate) const TIMESTAMP_BYTES: u64 = 16;

impl Timestamps {
    /// None when the device was opened without the timestamp features.
    pub(crate) fn new(device: &wgpu::Device, queue: &wgpu::Queue) -> Option<Self> {
        if !device.features().contains(TIMESTAMP_FEATURES) {
            return None;
        }
        let (resolved, readable) = query_buffers(device, TIMESTAMP_BYTES, "kiln timer");
        Some(Timestamps {
            query_set: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("kiln timer"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            }),
            resolved,
            readable,
            period_ns: queue.get_timestamp_period() as f64,
        })
    }
}

/// The buffer a query set resolves into (`bytes` long) and the mappable copy it is read from.
pub(crate) fn query_buffers(
    device: &wgpu::Device,
    bytes: u64,
    label: &str,
) -> (wgpu::Buffer, wgpu::Buffer) {
    let buffer = |what: &str, usage| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(&format!("{label} {what}")),
            size: bytes,
            usage,
            mapped_at_creation: false,
        })
    };
    (
        buffer(
            "resolve",
            wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        ),
        buffer(
            "readback",
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        ),
    )
}

/// Waits for the device and reads the first `count` timestamps (ticks) of a mappable buffer
/// whose copy has been submitted.
pub(crate) fn read_ticks(
    device: &wgpu::Device,
    readable: &wgpu::Buffer,
    count: usize,
) -> std::result::Result<Vec<u64>, String> {
    let slice = readable.slice(0..8 * count as u64);
    let failed = Arc::new(AtomicBool::new(true));
    {
        let failed = failed.clone();
        slice.map_async(wgpu::MapMode::Read, move |result| {
            failed.store(result.is_err(), Ordering::SeqCst)
        });
    }
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| format!("waiting for the device: {e}"))?;
    if failed.load(Ordering::SeqCst) {
        return Err("mapping the timestamp buffer failed".into());
    }
    let ticks = {
        let view = slice
            .get_mapped_range()
            .map_err(|e| format!("reading the timestamps: {e}"))?;
        bytemuck::pod_collect_to_vec(&view[..8 * count])
    };
    readable.unmap();
    Ok(ticks)
}

/// Runs `work` between two timestamps and returns its result with the device time between
/// them (None when the adapter cannot time). Waits for the device: a sync point.
pub(crate) fn time_on_device<T>(
    ctx: &Context,
    work: impl FnOnce() -> Result<T>,
) -> Result<(T, Option<Duration>)> {
    if ctx.timestamps.is_none() {
        return Ok((work()?, None));
    }
    ctx.write_timestamp(0);
    let value = work()?;
    ctx.write_timestamp(1);
    ctx.resolve_timestamps();
    let timestamps = ctx.timestamps.as_ref().expect("checked above");
    let ticks = read_ticks(&ctx.device, &timestamps.readable, 2).map_err(KilnError::Device)?;
    ctx.check_errors()?;
    let nanos = ticks[1].saturating_sub(ticks[0]) as f64 * timestamps.period_ns;
    Ok((value, Some(Duration::from_nanos(nanos.round() as u64))))
}
