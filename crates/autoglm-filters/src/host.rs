//! The functions a filter imports: proxy-wasm's `env.proxy_*` host calls,
//! over the [`Exchange`] of the call in progress, and the few WASI calls a
//! filter built for `wasm32-wasip1` makes (the clock, randomness, empty
//! arguments and environment, its stdout and stderr sent to the log).
//! Nothing else is granted: no file, no socket, no other process. A
//! function not defined here traps when called, so a module importing one
//! still loads.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use wasmtime::{Caller, Linker, Memory, Result, TypedFunc, bail, format_err};

use crate::abi::{self, BufferType, MapType, Status};
use crate::exchange::{Exchange, LocalResponse};

/// A WASI error number: the call is not supported.
const ENOSYS: i32 = 52;
/// A WASI error number: no such file descriptor.
const EBADF: i32 = 8;
/// A WASI error number: an argument is out of range.
const EINVAL: i32 = 28;
/// Most bytes a filter's headers may hold, all of one map together.
const MAX_HEADER_BYTES: usize = 256 * 1024;
/// Most bytes of a body a filter may make.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Most shared entries, properties or metrics of one filter.
const MAX_ENTRIES: usize = 10_000;
/// Most bytes one shared value may have.
const MAX_SHARED_VALUE: usize = 1024 * 1024;
/// Most bytes of one write to stdout or stderr that reach the log.
const MAX_LOGGED: usize = 64 * 1024;

/// What one filter instance's host calls work on.
pub struct Host {
    /// The exchange of the call in progress.
    pub exchange: Exchange,
    /// The attachment's configuration, read in `proxy_on_configure`.
    pub config: Arc<[u8]>,
    /// The filter's name, for its logs and `plugin_name`.
    pub name: Arc<str>,
    pub memory: Option<Memory>,
    pub alloc: Option<TypedFunc<i32, i32>>,
    pub cap: Cap,
    /// Shared data, visible to every instance of the same filter.
    pub shared: Arc<Shared>,
    /// Metrics a filter defines: kept per instance, read by nobody else yet.
    metrics: Vec<i64>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("name", &self.name).finish()
    }
}

impl Host {
    pub fn new(name: Arc<str>, config: Arc<[u8]>, memory_cap: usize, shared: Arc<Shared>) -> Host {
        Host {
            exchange: Exchange::default(),
            config,
            name,
            memory: None,
            alloc: None,
            cap: Cap {
                memory: memory_cap,
                hit: false,
            },
            shared,
            metrics: Vec::new(),
        }
    }
}

/// The memory cap of one instance; `hit` tells a trap caused by it.
#[derive(Debug)]
pub struct Cap {
    pub memory: usize,
    pub hit: bool,
}

impl wasmtime::ResourceLimiter for Cap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> Result<bool> {
        if desired > self.memory {
            self.hit = true;
            bail!(
                "the filter's memory would grow to {desired} bytes, past its cap of {} bytes",
                self.memory
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> Result<bool> {
        Ok(desired <= 100_000)
    }

    // One instance, its one memory and its tables: the cap holds for the
    // whole instance, not per memory.
    fn instances(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        4
    }
}

/// `proxy_get_shared_data` and `proxy_set_shared_data`: a value with the
/// compare-and-swap number of its last write, per filter.
#[derive(Debug, Default)]
pub struct Shared {
    entries: Mutex<HashMap<Vec<u8>, Versioned>>,
}

/// A shared value and the number of its last write.
type Versioned = (Vec<u8>, u32);

/// The linker of every filter: every host call this host answers.
pub fn linker(engine: &wasmtime::Engine) -> Result<Linker<Host>> {
    let mut linker = Linker::new(engine);
    proxy_calls(&mut linker)?;
    wasi_calls(&mut linker)?;
    Ok(linker)
}

type Call<'a> = Caller<'a, Host>;

fn memory(caller: &Call<'_>) -> Result<Memory> {
    caller
        .data()
        .memory
        .ok_or_else(|| format_err!("the filter exports no memory"))
}

/// `len` bytes of the filter's memory at `ptr`.
fn read(caller: &Call<'_>, ptr: i32, len: i32) -> Result<Vec<u8>> {
    let memory = memory(caller)?;
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    let data = memory.data(caller);
    data.get(ptr..ptr.saturating_add(len))
        .map(<[u8]>::to_vec)
        .ok_or_else(|| format_err!("the filter passed memory it does not have ({ptr}+{len})"))
}

fn read_text(caller: &Call<'_>, ptr: i32, len: i32) -> Result<String> {
    String::from_utf8(read(caller, ptr, len)?)
        .map_err(|_| format_err!("a header name is not UTF-8"))
}

fn write(caller: &mut Call<'_>, ptr: i32, bytes: &[u8]) -> Result<()> {
    let memory = memory(caller)?;
    memory
        .write(caller, ptr as u32 as usize, bytes)
        .map_err(|_| format_err!("the filter passed memory it does not have"))
}

/// Hands `bytes` to the filter: copied into memory it allocates, their
/// address and length written at `ret_ptr` and `ret_size` (0 and 0 for none).
fn give(caller: &mut Call<'_>, bytes: &[u8], ret_ptr: i32, ret_size: i32) -> Result<i32> {
    let ptr = if bytes.is_empty() {
        0
    } else {
        let alloc = caller
            .data()
            .alloc
            .clone()
            .ok_or_else(|| format_err!("the filter exports no allocator"))?;
        let ptr = alloc.call(&mut *caller, bytes.len() as i32)?;
        if ptr == 0 {
            return Ok(Status::InternalFailure as i32);
        }
        write(caller, ptr, bytes)?;
        ptr
    };
    write(caller, ret_ptr, &ptr.to_le_bytes())?;
    write(caller, ret_size, &(bytes.len() as u32).to_le_bytes())?;
    Ok(Status::Ok as i32)
}

/// [`give`]s `value`, or answers that there is none.
fn give_found(
    caller: &mut Call<'_>,
    value: Option<Vec<u8>>,
    ret_ptr: i32,
    ret_size: i32,
) -> Result<i32> {
    match value {
        Some(v) => give(caller, &v, ret_ptr, ret_size),
        None => Ok(Status::NotFound as i32),
    }
}

fn ok() -> Result<i32> {
    Ok(Status::Ok as i32)
}

fn proxy_calls(linker: &mut Linker<Host>) -> Result<()> {
    linker.func_wrap(
        "env",
        "proxy_log",
        |caller: Call<'_>, level: i32, ptr: i32, len: i32| {
            let message = String::from_utf8_lossy(&read(&caller, ptr, len)?).into_owned();
            let filter = &*caller.data().name;
            match level {
                0 | 1 => tracing::debug!(filter, "{message}"),
                2 => tracing::info!(filter, "{message}"),
                3 => tracing::warn!(filter, "{message}"),
                _ => tracing::error!(filter, "{message}"),
            }
            ok()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_log_level",
        |mut caller: Call<'_>, ret: i32| {
            // Info: what the gateway logs by default.
            write(&mut caller, ret, &2u32.to_le_bytes())?;
            ok()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut caller: Call<'_>, ret: i32| {
            write(&mut caller, ret, &unix_nanos().to_le_bytes())?;
            ok()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |caller: Call<'_>, _period: i32| {
            tracing::warn!(
                filter = &*caller.data().name,
                "timers are not supported: on_tick is never called"
            );
            ok()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut caller: Call<'_>, buffer: i32, start: i32, max: i32, ret_ptr: i32, ret_size: i32| {
            let host = caller.data();
            let whole: &[u8] = match BufferType::from_raw(buffer) {
                BufferType::RequestBody => &host.exchange.request_body,
                BufferType::ResponseBody => &host.exchange.response_body,
                BufferType::PluginConfiguration => &host.config,
                BufferType::VmConfiguration => &[],
                BufferType::Other => return Ok(Status::NotFound as i32),
            };
            let start = (start as u32 as usize).min(whole.len());
            let end = start.saturating_add(max as u32 as usize).min(whole.len());
            let part = whole[start..end].to_vec();
            give(&mut caller, &part, ret_ptr, ret_size)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut caller: Call<'_>, buffer: i32, start: i32, size: i32, ptr: i32, len: i32| {
            let data = read(&caller, ptr, len)?;
            let exchange = &mut caller.data_mut().exchange;
            let body = match BufferType::from_raw(buffer) {
                BufferType::RequestBody => &mut exchange.request_body,
                BufferType::ResponseBody => &mut exchange.response_body,
                _ => return Ok(Status::BadArgument as i32),
            };
            let start = (start as u32 as usize).min(body.len());
            let end = start.saturating_add(size as u32 as usize).min(body.len());
            if body.len() - (end - start) + data.len() > MAX_BODY_BYTES {
                bail!("the filter made a body of more than {MAX_BODY_BYTES} bytes");
            }
            body.splice(start..end, data);
            ok()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut caller: Call<'_>, map: i32, ret_ptr: i32, ret_size: i32| {
            let Some(pairs) = caller.data().exchange.map(MapType::from_raw(map)) else {
                return give(&mut caller, &abi::encode_map(&[]), ret_ptr, ret_size);
            };
            let bytes = abi::encode_map(pairs);
            give(&mut caller, &bytes, ret_ptr, ret_size)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        |mut caller: Call<'_>, map: i32, ptr: i32, len: i32| {
            let bytes = read(&caller, ptr, len)?;
            let pairs = abi::decode_map(&bytes)
                .ok_or_else(|| format_err!("a header map the filter wrote is malformed"))?;
            if bytes.len() > MAX_HEADER_BYTES {
                bail!("the filter made headers of more than {MAX_HEADER_BYTES} bytes");
            }
            match caller.data_mut().exchange.map_mut(MapType::from_raw(map)) {
                Some(headers) => {
                    *headers = pairs
                        .into_iter()
                        .map(|(n, v)| (n.to_ascii_lowercase(), v))
                        .collect();
                    ok()
                }
                None => Ok(Status::BadArgument as i32),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut caller: Call<'_>,
         map: i32,
         key_ptr: i32,
         key_len: i32,
         ret_ptr: i32,
         ret_size: i32| {
            let key = read_text(&caller, key_ptr, key_len)?;
            let value = caller
                .data()
                .exchange
                .map(MapType::from_raw(map))
                .and_then(|h| h.iter().find(|(n, _)| n.eq_ignore_ascii_case(&key)))
                .map(|(_, v)| v.clone());
            give_found(&mut caller, value, ret_ptr, ret_size)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |mut caller: Call<'_>,
         map: i32,
         key_ptr: i32,
         key_len: i32,
         value_ptr: i32,
         value_len: i32| {
            let key = read_text(&caller, key_ptr, key_len)?.to_ascii_lowercase();
            let value = read(&caller, value_ptr, value_len)?;
            edit_map(&mut caller, map, |headers| {
                match headers.iter().position(|(n, _)| *n == key) {
                    Some(at) => {
                        headers[at].1 = value;
                        let mut index = 0;
                        headers.retain(|(n, _)| {
                            index += 1;
                            index - 1 == at || *n != key
                        });
                    }
                    None => headers.push((key, value)),
                }
            })
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |mut caller: Call<'_>,
         map: i32,
         key_ptr: i32,
         key_len: i32,
         value_ptr: i32,
         value_len: i32| {
            let key = read_text(&caller, key_ptr, key_len)?.to_ascii_lowercase();
            let value = read(&caller, value_ptr, value_len)?;
            edit_map(&mut caller, map, |headers| headers.push((key, value)))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut caller: Call<'_>, map: i32, key_ptr: i32, key_len: i32| {
            let key = read_text(&caller, key_ptr, key_len)?;
            edit_map(&mut caller, map, |headers| {
                headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&key))
            })
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_property",
        |mut caller: Call<'_>, path_ptr: i32, path_len: i32, ret_ptr: i32, ret_size: i32| {
            let path = read(&caller, path_ptr, path_len)?;
            let host = caller.data();
            let value = host
                .exchange
                .set_properties
                .get(&path)
                .cloned()
                .or_else(|| host.exchange.property(&abi::decode_path(&path), &host.name));
            give_found(&mut caller, value, ret_ptr, ret_size)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_property",
        |mut caller: Call<'_>, path_ptr: i32, path_len: i32, value_ptr: i32, value_len: i32| {
            let path = read(&caller, path_ptr, path_len)?;
            let value = read(&caller, value_ptr, value_len)?;
            let set = &mut caller.data_mut().exchange.set_properties;
            if set.len() >= MAX_ENTRIES && !set.contains_key(&path) {
                bail!("the filter set more than {MAX_ENTRIES} properties");
            }
            set.insert(path, value);
            ok()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut caller: Call<'_>,
         key_ptr: i32,
         key_len: i32,
         ret_ptr: i32,
         ret_size: i32,
         ret_cas: i32| {
            let key = read(&caller, key_ptr, key_len)?;
            let entry = caller.data().shared.entries.lock().get(&key).cloned();
            let Some((value, cas)) = entry else {
                return Ok(Status::NotFound as i32);
            };
            write(&mut caller, ret_cas, &cas.to_le_bytes())?;
            give(&mut caller, &value, ret_ptr, ret_size)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_shared_data",
        |caller: Call<'_>, key_ptr: i32, key_len: i32, value_ptr: i32, value_len: i32, cas: i32| {
            let key = read(&caller, key_ptr, key_len)?;
            let value = read(&caller, value_ptr, value_len)?;
            if value.len() > MAX_SHARED_VALUE {
                return Ok(Status::BadArgument as i32);
            }
            let mut entries = caller.data().shared.entries.lock();
            if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
                return Ok(Status::BadArgument as i32);
            }
            let current = entries.get(&key).map_or(0, |(_, c)| *c);
            if cas != 0 && cas as u32 != current {
                return Ok(Status::CasMismatch as i32);
            }
            entries.insert(key, (value, current.wrapping_add(1).max(1)));
            ok()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut caller: Call<'_>,
         status: i32,
         _details_ptr: i32,
         _details_len: i32,
         body_ptr: i32,
         body_len: i32,
         headers_ptr: i32,
         headers_len: i32,
         _grpc_status: i32| {
            let body = read(&caller, body_ptr, body_len)?;
            let headers = if headers_len == 0 {
                Vec::new()
            } else {
                abi::decode_map(&read(&caller, headers_ptr, headers_len)?)
                    .ok_or_else(|| format_err!("the local response's headers are malformed"))?
            };
            if !(200..=599).contains(&status) {
                return Ok(Status::BadArgument as i32);
            }
            caller.data_mut().exchange.local_response = Some(LocalResponse {
                status: status as u16,
                headers: headers
                    .into_iter()
                    .map(|(n, v)| (n.to_ascii_lowercase(), v))
                    .collect(),
                body,
            });
            ok()
        },
    )?;
    // The SDK's reset_http_request/response: the request is refused.
    linker.func_wrap(
        "env",
        "proxy_close_stream",
        |mut caller: Call<'_>, _: i32| {
            caller.data_mut().exchange.reset = true;
            ok()
        },
    )?;
    for name in ["proxy_continue_stream", "proxy_set_effective_context"] {
        linker.func_wrap("env", name, |_: Call<'_>, _: i32| ok())?;
    }
    linker.func_wrap("env", "proxy_done", |_: Call<'_>| ok())?;
    // HTTP and gRPC callouts are not offered: the SDK hands the filter an error.
    linker.func_wrap(
        "env",
        "proxy_http_call",
        |_: Call<'_>,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32| { Ok(Status::InternalFailure as i32) },
    )?;
    linker.func_wrap(
        "env",
        "proxy_define_metric",
        |mut caller: Call<'_>, _kind: i32, _name_ptr: i32, _name_len: i32, ret: i32| {
            let id = caller.data().metrics.len() as u32;
            if id as usize >= MAX_ENTRIES {
                bail!("the filter defined more than {MAX_ENTRIES} metrics");
            }
            caller.data_mut().metrics.push(0);
            write(&mut caller, ret, &id.to_le_bytes())?;
            ok()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_increment_metric",
        |mut caller: Call<'_>, id: i32, by: i64| {
            Ok(set_metric(&mut caller, id, |m| m.saturating_add(by)))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_record_metric",
        |mut caller: Call<'_>, id: i32, value: i64| Ok(set_metric(&mut caller, id, |_| value)),
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_metric",
        |mut caller: Call<'_>, id: i32, ret: i32| match caller
            .data()
            .metrics
            .get(id as u32 as usize)
            .copied()
        {
            Some(value) => {
                write(&mut caller, ret, &value.to_le_bytes())?;
                ok()
            }
            None => Ok(Status::NotFound as i32),
        },
    )?;
    Ok(())
}

/// Sets metric `id` from its value; not found when the filter never defined it.
fn set_metric(caller: &mut Call<'_>, id: i32, to: impl FnOnce(i64) -> i64) -> i32 {
    match caller.data_mut().metrics.get_mut(id as u32 as usize) {
        Some(metric) => {
            *metric = to(*metric);
            Status::Ok as i32
        }
        None => Status::NotFound as i32,
    }
}

/// Changes a header map of the exchange; a map it does not have is a bad argument.
fn edit_map(
    caller: &mut Call<'_>,
    map: i32,
    edit: impl FnOnce(&mut crate::exchange::Headers),
) -> Result<i32> {
    match caller.data_mut().exchange.map_mut(MapType::from_raw(map)) {
        Some(headers) => {
            edit(headers);
            let bytes: usize = headers.iter().map(|(n, v)| n.len() + v.len()).sum();
            if bytes > MAX_HEADER_BYTES {
                bail!("the filter made headers of more than {MAX_HEADER_BYTES} bytes");
            }
            ok()
        }
        None => Ok(Status::BadArgument as i32),
    }
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn wasi_calls(linker: &mut Linker<Host>) -> Result<()> {
    const WASI: &str = "wasi_snapshot_preview1";
    linker.func_wrap(
        WASI,
        "random_get",
        |mut caller: Call<'_>, ptr: i32, len: i32| {
            if len as u32 as usize > 1 << 20 {
                return Ok(EINVAL);
            }
            let mut bytes = vec![0u8; len as u32 as usize];
            rand::fill(&mut bytes[..]);
            write(&mut caller, ptr, &bytes)?;
            Ok(0)
        },
    )?;
    linker.func_wrap(
        WASI,
        "clock_time_get",
        |mut caller: Call<'_>, _clock: i32, _precision: i64, ret: i32| {
            write(&mut caller, ret, &unix_nanos().to_le_bytes())?;
            Ok(0)
        },
    )?;
    for name in ["environ_sizes_get", "args_sizes_get"] {
        linker.func_wrap(WASI, name, |mut caller: Call<'_>, count: i32, size: i32| {
            write(&mut caller, count, &0u32.to_le_bytes())?;
            write(&mut caller, size, &0u32.to_le_bytes())?;
            Ok(0)
        })?;
    }
    for name in ["environ_get", "args_get"] {
        linker.func_wrap(WASI, name, |_: Call<'_>, _: i32, _: i32| Ok(0))?;
    }
    linker.func_wrap(
        WASI,
        "fd_write",
        |mut caller: Call<'_>, fd: i32, iovs: i32, iovs_len: i32, ret: i32| {
            if fd != 1 && fd != 2 {
                return Ok(EBADF);
            }
            // Counted whole, logged up to MAX_LOGGED bytes.
            let (mut text, mut written) = (Vec::new(), 0u32);
            for i in 0..iovs_len.clamp(0, 1024) {
                let iov = read(&caller, iovs.wrapping_add(i.wrapping_mul(8)), 8)?;
                let ptr = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
                let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
                written = written.saturating_add(len as u32);
                let room = MAX_LOGGED
                    .saturating_sub(text.len())
                    .min(len as u32 as usize);
                if room > 0 {
                    text.extend(read(&caller, ptr, room as i32)?);
                }
            }
            let line = String::from_utf8_lossy(&text);
            tracing::info!(filter = &*caller.data().name, fd, "{}", line.trim_end());
            write(&mut caller, ret, &written.to_le_bytes())?;
            Ok(0)
        },
    )?;
    linker.func_wrap(WASI, "sched_yield", |_: Call<'_>| Ok(0))?;
    linker.func_wrap(WASI, "proc_exit", |_: Call<'_>, code: i32| -> Result<()> {
        bail!("the filter exited with code {code}")
    })?;
    linker.func_wrap(WASI, "fd_close", |_: Call<'_>, _: i32| Ok(EBADF))?;
    for name in ["fd_fdstat_get", "fd_prestat_get"] {
        linker.func_wrap(WASI, name, |_: Call<'_>, _: i32, _: i32| Ok(EBADF))?;
    }
    linker.func_wrap(
        WASI,
        "fd_seek",
        |_: Call<'_>, _: i32, _: i64, _: i32, _: i32| Ok(ENOSYS),
    )?;
    Ok(())
}
