//! A capture file of traced frames that Wireshark and tshark read: each TPKT packet is wrapped in
//! synthetic IPv4/IPv6 and TCP headers built from the connection's real addresses and ports, so
//! the TPKT/COTP/S7comm dissectors decode it (on a port other than 102, use "Decode As TPKT").

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// pcap link type for packets that begin with an IPv4 or IPv6 header.
const LINKTYPE_RAW: u32 = 101;
const TCP_HEADER: usize = 20;

pub struct PcapWriter {
    out: BufWriter<File>,
    /// (local, peer) of the connection being traced; frames before connect are not written.
    ends: Option<(SocketAddr, SocketAddr)>,
    /// Next TCP sequence number of each direction: [sent by us, received from the peer].
    seq: [u32; 2],
}

impl PcapWriter {
    pub fn create(path: &Path) -> io::Result<PcapWriter> {
        let mut out = BufWriter::new(File::create(path)?);
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&0xA1B2_C3D4u32.to_le_bytes());
        header.extend_from_slice(&2u16.to_le_bytes());
        header.extend_from_slice(&4u16.to_le_bytes());
        header.extend_from_slice(&0i32.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        header.extend_from_slice(&65_535u32.to_le_bytes());
        header.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
        out.write_all(&header)?;
        out.flush()?;
        Ok(PcapWriter {
            out,
            ends: None,
            seq: [1, 1],
        })
    }

    /// A new connection: later frames carry these addresses, sequence numbers start again.
    pub fn set_endpoints(&mut self, local: SocketAddr, peer: SocketAddr) {
        self.ends = Some((local, peer));
        self.seq = [1, 1];
    }

    /// Writes one frame (a whole TPKT packet) and flushes, so the file is complete at any time.
    pub fn write(&mut self, sent: bool, frame: &[u8]) -> io::Result<()> {
        let Some((local, peer)) = self.ends else {
            return Ok(());
        };
        let (src, dst) = if sent { (local, peer) } else { (peer, local) };
        let (mine, theirs) = if sent { (0, 1) } else { (1, 0) };
        let mut packet = Vec::with_capacity(40 + TCP_HEADER + frame.len());
        ip_header(&mut packet, src.ip(), dst.ip(), TCP_HEADER + frame.len());
        packet.extend_from_slice(&src.port().to_be_bytes());
        packet.extend_from_slice(&dst.port().to_be_bytes());
        packet.extend_from_slice(&self.seq[mine].to_be_bytes());
        packet.extend_from_slice(&self.seq[theirs].to_be_bytes());
        // Data offset 5 words; flags PSH+ACK; window; checksum left 0; urgent pointer 0.
        packet.extend_from_slice(&[0x50, 0x18, 0xFF, 0xFF, 0, 0, 0, 0]);
        packet.extend_from_slice(frame);
        self.seq[mine] = self.seq[mine].wrapping_add(frame.len() as u32);

        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut record = Vec::with_capacity(16);
        record.extend_from_slice(&(now.as_secs() as u32).to_le_bytes());
        record.extend_from_slice(&now.subsec_micros().to_le_bytes());
        record.extend_from_slice(&(packet.len() as u32).to_le_bytes());
        record.extend_from_slice(&(packet.len() as u32).to_le_bytes());
        self.out.write_all(&record)?;
        self.out.write_all(&packet)?;
        self.out.flush()
    }
}

fn ip_header(out: &mut Vec<u8>, src: IpAddr, dst: IpAddr, payload: usize) {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = (20 + payload) as u16;
            let mut h = [0u8; 20];
            h[0] = 0x45;
            h[2..4].copy_from_slice(&total.to_be_bytes());
            h[6] = 0x40; // don't fragment
            h[8] = 64; // TTL
            h[9] = 6; // TCP
            h[12..16].copy_from_slice(&s.octets());
            h[16..20].copy_from_slice(&d.octets());
            let sum = ipv4_checksum(&h);
            h[10..12].copy_from_slice(&sum.to_be_bytes());
            out.extend_from_slice(&h);
        }
        (s, d) => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&(payload as u16).to_be_bytes());
            out.extend_from_slice(&[6, 64]);
            out.extend_from_slice(&v6(s).octets());
            out.extend_from_slice(&v6(d).octets());
        }
    }
}

fn ipv4_checksum(h: &[u8; 20]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_checksum_verifies() {
        let mut out = Vec::new();
        ip_header(
            &mut out,
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            27,
        );
        let h: [u8; 20] = out[..20].try_into().unwrap();
        // A header including its checksum sums to 0xFFFF, i.e. checksums to 0.
        assert_eq!(ipv4_checksum(&h), 0);
        assert_eq!(u16::from_be_bytes([h[2], h[3]]), 47);
    }
}
