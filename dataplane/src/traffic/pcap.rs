//! Reading a pcap or pcapng capture, streamed record by record, into a
//! population of flows aggregated by [`FlowKey`] in order of first packet.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, ErrorKind, Read, Seek, SeekFrom};
use std::path::Path;

use hashing::FlowKey;
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::PcapNgReader;
use pcap_file::{Endianness, PcapError, TsResolution};

use super::packet::{parse_frame, LinkType, SkipReason};
use super::{file_name, CaptureStats, Flow, Population, PopulationStats, TrafficError};

/// What is wrong with a capture file, completing "cannot read capture PATH: ...".
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file does not exist.
    #[error("file does not exist")]
    NotFound,
    /// The file could not be opened or read.
    #[error("{0}")]
    Io(io::Error),
    /// The file has no bytes.
    #[error("file is empty")]
    Empty,
    /// The file starts with neither a pcap nor a pcapng magic number.
    #[error("file is not a pcap or pcapng capture")]
    NotACapture,
    /// The file is compressed.
    #[error("file is {0}-compressed; decompress it first")]
    Compressed(&'static str),
    /// The file has a capture magic number but its file header is unusable.
    #[error("the {format} file header is malformed or truncated ({detail})")]
    BadHeader {
        /// `pcap` or `pcapng`.
        format: &'static str,
        /// What the capture reader said.
        detail: String,
    },
}

impl From<io::Error> for CaptureError {
    fn from(err: io::Error) -> Self {
        if err.kind() == ErrorKind::NotFound {
            CaptureError::NotFound
        } else {
            CaptureError::Io(err)
        }
    }
}

/// The two container formats, told apart by their first four bytes.
enum Format {
    Pcap,
    PcapNg,
}

/// Reads the capture at `path` into a population named `pcap:<file name>`.
///
/// Each packet that parses (see [`parse_frame`]) joins the flow of its key;
/// the pcapng interface number becomes the key's `ingress_port` (0 for pcap).
/// A flow's bytes are the packets' original lengths. Flows keep the order of
/// their first packet in the file and their times are relative to the
/// earliest packet. `max_flows` caps the number of flows (0 = no cap).
///
/// Malformed packets are skipped and counted by reason in
/// [`CaptureStats::skipped`]; a malformed record ends reading but keeps the
/// flows read so far. A file that is not a capture is an error, and so is a
/// capture with no IP flow.
pub fn read_capture(path: &Path, max_flows: usize) -> Result<Population, TrafficError> {
    let fail = |reason: CaptureError| TrafficError::Pcap {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = File::open(path).map_err(|e| fail(e.into()))?;
    let format = sniff(&mut file).map_err(fail)?;
    file.seek(SeekFrom::Start(0)).map_err(|e| fail(e.into()))?;

    let mut flows = Aggregator::new(max_flows);
    match format {
        Format::Pcap => read_pcap(file, &mut flows),
        Format::PcapNg => read_pcapng(file, &mut flows),
    }
    .map_err(fail)?;
    flows.finish(path)
}

/// Reads the magic number and says which format the file is in.
fn sniff(file: &mut File) -> Result<Format, CaptureError> {
    let mut magic = [0u8; 4];
    let mut filled = 0;
    while filled < magic.len() {
        match file.read(&mut magic[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    if filled == 0 {
        return Err(CaptureError::Empty);
    }
    if filled < magic.len() {
        return Err(CaptureError::NotACapture);
    }
    match u32::from_be_bytes(magic) {
        0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 => Ok(Format::Pcap),
        0x0a0d_0d0a => Ok(Format::PcapNg),
        _ => Err(match magic {
            [0x1f, 0x8b, ..] => CaptureError::Compressed("gzip"),
            [0x28, 0xb5, 0x2f, 0xfd] => CaptureError::Compressed("zstd"),
            [0xfd, b'7', b'z', b'X'] => CaptureError::Compressed("xz"),
            [b'B', b'Z', b'h', _] => CaptureError::Compressed("bzip2"),
            _ => CaptureError::NotACapture,
        }),
    }
}

/// The skip reason for a record the capture reader rejected. A read error of
/// the file itself is returned as an error instead.
fn record_error(err: PcapError) -> Result<SkipReason, CaptureError> {
    match err {
        PcapError::IoError(e) if e.kind() == ErrorKind::UnexpectedEof => {
            Ok(SkipReason::TruncatedRecord)
        }
        PcapError::IoError(e) => Err(CaptureError::Io(e)),
        _ => Ok(SkipReason::CorruptRecord),
    }
}

/// The error for a file header the capture reader rejected.
fn header_error(format: &'static str, err: PcapError) -> CaptureError {
    let detail = match err {
        PcapError::IoError(e) if e.kind() == ErrorKind::UnexpectedEof => {
            "the file ends inside it".to_string()
        }
        PcapError::IoError(e) => return CaptureError::Io(e),
        PcapError::InvalidField(field) => field.to_string(),
        other => other.to_string(),
    };
    CaptureError::BadHeader { format, detail }
}

/// Streams a classic pcap file.
fn read_pcap(file: File, flows: &mut Aggregator) -> Result<(), CaptureError> {
    let mut reader = PcapReader::new(file).map_err(|e| header_error("pcap", e))?;
    let header = reader.header();
    let code = u32::from(header.datalink);
    let link = LinkType::from_code(code).ok_or(code);
    let frac_ns = match header.ts_resolution {
        TsResolution::MicroSecond => 1_000,
        TsResolution::NanoSecond => 1,
    };
    // Raw records: the reader's checked packets reject orig_len > snaplen,
    // which captures cut by a small snaplen legitimately have.
    while let Some(record) = reader.next_raw_packet() {
        match record {
            Ok(raw) => {
                let ts = u64::from(raw.ts_sec) * 1_000_000_000 + u64::from(raw.ts_frac) * frac_ns;
                flows.packet(link, &raw.data, raw.orig_len, ts, 0);
            }
            Err(err) => {
                // The reader cannot resynchronise after a bad record.
                flows.stop(record_error(err)?);
                break;
            }
        }
    }
    Ok(())
}

/// What a pcapng Interface Description Block says about its packets.
#[derive(Clone, Copy)]
struct Interface {
    link: Result<LinkType, u32>,
    snaplen: u32,
    /// `if_tsresol`: bit 7 clear: 10^-n seconds, set: 2^-n seconds.
    tsresol: u8,
    /// `if_tsoffset`, in seconds.
    tsoffset: i64,
}

impl Interface {
    /// Converts a timestamp in this interface's units to ns since the epoch.
    fn to_ns(self, ticks: u64) -> u64 {
        let ticks = u128::from(ticks);
        let exp = u32::from(self.tsresol & 0x7f);
        let ns = if self.tsresol & 0x80 != 0 {
            (ticks * 1_000_000_000) >> exp
        } else if exp <= 9 {
            ticks * 10u128.pow(9 - exp)
        } else {
            10u128.checked_pow(exp - 9).map_or(0, |div| ticks / div)
        };
        let offset = i128::from(self.tsoffset) * 1_000_000_000;
        let ns = (ns as i128).saturating_add(offset);
        u64::try_from(ns.max(0)).unwrap_or(u64::MAX)
    }
}

/// Endian-aware field reads from a pcapng block body.
struct Fields<'a> {
    body: &'a [u8],
    big: bool,
}

impl Fields<'_> {
    fn u16(&self, at: usize) -> Option<u16> {
        let b = self.body.get(at..at.checked_add(2)?)?;
        let b = [b[0], b[1]];
        Some(if self.big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32(&self, at: usize) -> Option<u32> {
        let b = self.body.get(at..at.checked_add(4)?)?;
        let b = [b[0], b[1], b[2], b[3]];
        Some(if self.big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn u64(&self, at: usize) -> Option<u64> {
        let b: [u8; 8] = self.body.get(at..at.checked_add(8)?)?.try_into().ok()?;
        Some(if self.big {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    }

    /// `len` bytes at `at`, if the body holds them.
    fn bytes(&self, at: usize, len: usize) -> Option<&[u8]> {
        self.body.get(at..at.checked_add(len)?)
    }
}

const BLOCK_SECTION_HEADER: u32 = 0x0a0d_0d0a;
const BLOCK_INTERFACE: u32 = 1;
const BLOCK_PACKET: u32 = 2;
const BLOCK_SIMPLE_PACKET: u32 = 3;
const BLOCK_ENHANCED_PACKET: u32 = 6;
const OPTION_END: u16 = 0;
const OPTION_TSRESOL: u16 = 9;
const OPTION_TSOFFSET: u16 = 14;

/// Parses an Interface Description Block body.
fn interface(f: &Fields<'_>) -> Option<Interface> {
    let code = u32::from(f.u16(0)?);
    let mut iface = Interface {
        link: LinkType::from_code(code).ok_or(code),
        snaplen: f.u32(4)?,
        tsresol: 6,
        tsoffset: 0,
    };
    let mut at = 8;
    while let (Some(opt), Some(len)) = (f.u16(at), f.u16(at + 2)) {
        let len = usize::from(len);
        let value = at + 4;
        match opt {
            OPTION_END => break,
            OPTION_TSRESOL if len == 1 => iface.tsresol = *f.body.get(value)?,
            OPTION_TSOFFSET if len == 8 => iface.tsoffset = f.u64(value)? as i64,
            _ => {}
        }
        at = value + len.div_ceil(4) * 4;
    }
    Some(iface)
}

/// Streams a pcapng file: every section, interface and packet block.
fn read_pcapng(file: File, flows: &mut Aggregator) -> Result<(), CaptureError> {
    let mut reader = PcapNgReader::new(file).map_err(|e| header_error("pcapng", e))?;
    // Blocks are parsed here rather than by the reader, so that one odd option
    // in a packet block does not end reading, and so that the interface table
    // can be kept while the reader lends out a block.
    let mut big = reader.section().endianness == Endianness::Big;
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut last_ts = 0;
    while let Some(block) = reader.next_raw_block() {
        let block = match block {
            Ok(block) => block,
            Err(err) => {
                flows.stop(record_error(err)?);
                break;
            }
        };
        let f = Fields {
            body: &block.body,
            big,
        };
        match block.type_ {
            BLOCK_SECTION_HEADER => {
                // The byte-order magic reads 0x1a2b3c4d in the section's order.
                big = f.body.get(0..4) == Some(&[0x1a, 0x2b, 0x3c, 0x4d]);
                interfaces.clear();
            }
            BLOCK_INTERFACE => match interface(&f) {
                Some(iface) => interfaces.push(iface),
                // Keep interface numbering aligned; its packets are skipped.
                None => interfaces.push(Interface {
                    link: Err(u32::MAX),
                    snaplen: 0,
                    tsresol: 6,
                    tsoffset: 0,
                }),
            },
            BLOCK_ENHANCED_PACKET | BLOCK_PACKET => {
                // EPB: interface (4), ts high, ts low, captured, original.
                // Obsolete PB: interface (2), drops (2), then the same.
                let id = if block.type_ == BLOCK_PACKET {
                    f.u16(0).map(u32::from)
                } else {
                    f.u32(0)
                };
                let fields = (id, f.u32(4), f.u32(8), f.u32(12), f.u32(16));
                let (Some(id), Some(hi), Some(lo), Some(captured), Some(original)) = fields else {
                    flows.skip(SkipReason::MalformedBlock);
                    continue;
                };
                let Some(data) = f.bytes(20, captured as usize) else {
                    flows.skip(SkipReason::MalformedBlock);
                    continue;
                };
                let Some(iface) = interfaces.get(id as usize) else {
                    flows.skip(SkipReason::UnknownInterface);
                    continue;
                };
                last_ts = iface.to_ns((u64::from(hi) << 32) | u64::from(lo));
                flows.packet(iface.link, data, original, last_ts, id);
            }
            BLOCK_SIMPLE_PACKET => {
                // SPB: original length, then data padded to 32 bits; it has
                // no timestamp (the previous packet's is used) and belongs to
                // interface 0.
                let Some(iface) = interfaces.first() else {
                    flows.skip(SkipReason::UnknownInterface);
                    continue;
                };
                let Some(original) = f.u32(0) else {
                    flows.skip(SkipReason::MalformedBlock);
                    continue;
                };
                let mut captured = f.body.len().saturating_sub(4).min(original as usize);
                if iface.snaplen != 0 {
                    captured = captured.min(iface.snaplen as usize);
                }
                let data = f.bytes(4, captured).unwrap_or_default();
                flows.packet(iface.link, data, original, last_ts, 0);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Aggregates packets into flows in order of first appearance.
struct Aggregator {
    index: HashMap<FlowKey, usize>,
    flows: Vec<Flow>,
    max_flows: usize,
    stats: CaptureStats,
}

impl Aggregator {
    fn new(max_flows: usize) -> Self {
        Aggregator {
            index: HashMap::new(),
            flows: Vec::new(),
            max_flows: if max_flows == 0 {
                usize::MAX
            } else {
                max_flows
            },
            stats: CaptureStats::default(),
        }
    }

    fn skip(&mut self, reason: SkipReason) {
        self.stats.packets_read += 1;
        *self.stats.skipped.entry(reason).or_insert(0) += 1;
    }

    /// Records why reading stopped (counted as one skipped record).
    fn stop(&mut self, reason: SkipReason) {
        self.skip(reason);
    }

    fn packet(
        &mut self,
        link: Result<LinkType, u32>,
        data: &[u8],
        original_len: u32,
        ts_ns: u64,
        ingress: u32,
    ) {
        let link = match link {
            Ok(link) => link,
            Err(code) => {
                self.stats.unsupported_link_types.insert(code);
                return self.skip(SkipReason::UnsupportedLinkType);
            }
        };
        let mut key = match parse_frame(link, data) {
            Ok(key) => key,
            Err(reason) => return self.skip(reason),
        };
        key.ingress_port = ingress;
        // A record whose original length is below its captured length is
        // inconsistent; count at least the captured bytes.
        let bytes = u64::from(original_len).max(data.len() as u64);
        if let Some(&i) = self.index.get(&key) {
            let flow = &mut self.flows[i];
            flow.bytes = flow.bytes.saturating_add(bytes);
            flow.packets += 1;
            flow.first_seen_ns = flow.first_seen_ns.min(ts_ns);
            flow.last_seen_ns = flow.last_seen_ns.max(ts_ns);
        } else if self.flows.len() >= self.max_flows {
            return self.skip(SkipReason::FlowLimit);
        } else {
            self.index.insert(key, self.flows.len());
            self.flows.push(Flow {
                key,
                bytes,
                packets: 1,
                first_seen_ns: ts_ns,
                last_seen_ns: ts_ns,
            });
        }
        self.stats.packets_read += 1;
        self.stats.packets_used += 1;
    }

    /// Makes flow times relative to the earliest packet and builds the
    /// population, or reports a capture without flows.
    fn finish(mut self, path: &Path) -> Result<Population, TrafficError> {
        if self.flows.is_empty() {
            return Err(TrafficError::NoFlows {
                path: path.to_path_buf(),
                packets: self.stats.packets_read,
                skipped: self.stats.skipped_summary(),
            });
        }
        let start = self
            .flows
            .iter()
            .map(|f| f.first_seen_ns)
            .min()
            .unwrap_or(0);
        for flow in &mut self.flows {
            flow.first_seen_ns -= start;
            flow.last_seen_ns -= start;
        }
        self.stats.start_ns = start;
        let stats = PopulationStats {
            capture: Some(self.stats),
            ..PopulationStats::of(&self.flows)
        };
        Ok(Population {
            name: format!("pcap:{}", file_name(path)),
            flows: self.flows,
            stats,
        })
    }
}
