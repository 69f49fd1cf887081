//! IPv4 subnets for the private bridge: parsing, overlap, and choosing one
//! that collides with no route this host already has.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{Error, Result};

/// An IPv4 network with a host address in it (`10.87.0.1/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn parse(s: &str) -> Result<Subnet> {
        let bad = |why: &str| Error::Usage(format!("invalid subnet '{s}': {why}"));
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| bad("expected ADDRESS/PREFIX, e.g. 10.87.0.1/24"))?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad("not an IPv4 address"))?;
        let prefix: u8 = p.parse().map_err(|_| bad("prefix is not a number"))?;
        if !(8..=30).contains(&prefix) {
            return Err(bad("prefix must be between 8 and 30"));
        }
        Ok(Subnet { addr, prefix })
    }

    pub fn mask(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    pub fn network(&self) -> u32 {
        u32::from(self.addr) & self.mask()
    }

    /// The bridge's own address: the one given, or the first host address
    /// when the network address itself was given.
    pub fn gateway(&self) -> Subnet {
        if u32::from(self.addr) == self.network() {
            Subnet {
                addr: Ipv4Addr::from(self.network() + 1),
                prefix: self.prefix,
            }
        } else {
            *self
        }
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        let m = self.mask() & other.mask();
        (u32::from(self.addr) & m) == (u32::from(other.addr) & m)
    }

    pub fn is_private(&self) -> bool {
        self.addr.is_private()
    }

    /// A host address of this network other than its gateway (not the
    /// network or broadcast address).
    pub fn holds_host(&self, ip: Ipv4Addr) -> bool {
        let n = u32::from(ip);
        let broadcast = self.network() | !self.mask();
        n & self.mask() == self.network()
            && n != self.network()
            && n != broadcast
            && ip != self.gateway().addr
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Routes in the kernel's main table (from /proc/net/route), default route
/// excluded: each is a network some interface already reaches.
pub fn host_routes() -> Result<Vec<(String, Subnet)>> {
    let text = std::fs::read_to_string("/proc/net/route")
        .map_err(|e| Error::io("reading /proc/net/route", e))?;
    Ok(parse_proc_route(&text))
}

fn parse_proc_route(text: &str) -> Vec<(String, Subnet)> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // The file holds addresses in host (little-endian) byte order.
            let prefix = u32::from_be(mask.to_le()).count_ones() as u8;
            (prefix > 0).then(|| {
                (
                    f[0].to_string(),
                    Subnet {
                        addr: Ipv4Addr::from(u32::from_be(dest.to_le())),
                        prefix,
                    },
                )
            })
        })
        .collect()
}

/// The first free /24 in 10.100.0.0–10.254.255.0 that overlaps nothing taken.
pub fn choose_free(taken: &[Subnet]) -> Option<Subnet> {
    (100u8..=254)
        .flat_map(|b| (0u8..=255).map(move |c| Ipv4Addr::new(10, b, c, 1)))
        .map(|addr| Subnet { addr, prefix: 24 })
        .find(|s| !taken.iter().any(|t| t.overlaps(s)))
}

/// Ports something on this host listens on (TCP) or is bound to (UDP),
/// from /proc/net: no subprocess, IPv4 and IPv6.
pub fn listening_ports(udp: bool) -> std::collections::BTreeSet<u16> {
    sockets(udp).into_iter().map(|s| s.port).collect()
}

/// A listening TCP or bound UDP socket of this network namespace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Socket {
    pub udp: bool,
    pub addr: IpAddr,
    pub port: u16,
    /// The socket's inode, to find the process holding it.
    #[serde(skip)]
    pub inode: u64,
}

/// Every listening TCP (or bound UDP) socket, IPv4 and IPv6, from /proc/net.
pub fn sockets(udp: bool) -> Vec<Socket> {
    let files: &[&str] = if udp {
        &["/proc/net/udp", "/proc/net/udp6"]
    } else {
        &["/proc/net/tcp", "/proc/net/tcp6"]
    };
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| parse_proc_sockets(&text, udp))
        .collect()
}

fn parse_proc_sockets(text: &str, udp: bool) -> Vec<Socket> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (addr, port) = f.get(1)?.rsplit_once(':')?;
            // TCP: only LISTEN (0A). UDP: any bound socket (07, unconnected).
            let state = *f.get(3)?;
            (if udp { state == "07" } else { state == "0A" }).then_some(())?;
            Some(Socket {
                udp,
                addr: parse_proc_addr(addr)?,
                port: u16::from_str_radix(port, 16).ok()?,
                inode: f.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// /proc/net prints addresses as 32-bit words in host byte order.
fn parse_proc_addr(hex: &str) -> Option<IpAddr> {
    let words: Vec<[u8; 4]> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16).map(u32::to_ne_bytes))
        .collect::<std::result::Result<_, _>>()
        .ok()?;
    match words.len() {
        1 => Some(IpAddr::V4(Ipv4Addr::from(words[0]))),
        4 => Some(IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(words.concat()).ok()?,
        ))),
        _ => None,
    }
}

/// Which process holds each socket inode (pid, command name), from
/// /proc/*/fd; sockets of processes we may not read are simply absent.
pub fn socket_owners() -> std::collections::HashMap<u64, (u32, String)> {
    let mut out = std::collections::HashMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(p.path().join("comm"))
            .map(|c| c.trim().to_string())
            .unwrap_or_default();
        for fd in std::fs::read_dir(p.path().join("fd"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let link = std::fs::read_link(fd.path()).unwrap_or_default();
            let inode = link
                .to_str()
                .and_then(|l| l.strip_prefix("socket:["))
                .and_then(|l| l.strip_suffix(']'))
                .and_then(|l| l.parse::<u64>().ok());
            if let Some(i) = inode {
                out.entry(i).or_insert_with(|| (pid, comm.clone()));
            }
        }
    }
    out
}

/// The interface of the default route (the public one), from /proc/net/route.
pub fn default_route_interface() -> Option<String> {
    parse_default_route(&std::fs::read_to_string("/proc/net/route").ok()?)
}

fn parse_default_route(text: &str) -> Option<String> {
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1) == Some(&"00000000") && f.get(7) == Some(&"00000000")).then(|| f[0].to_string())
    })
}

/// The address this host's default route leaves from. Connecting a UDP
/// socket sends nothing; it only asks the kernel to pick a route.
pub fn default_source_ipv4() -> Option<Ipv4Addr> {
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    sock.connect("192.0.2.1:9").ok()?;
    match sock.local_addr().ok()?.ip() {
        std::net::IpAddr::V4(a) if !a.is_unspecified() => Some(a),
        _ => None,
    }
}

/// The status Traefik on loopback answers for `https://HOST:PORT/`, the
/// way a browser from outside would ask (SNI and Host), no cookie, no
/// redirects followed; its certificate is not checked (this asks who
/// answers, not whether the certificate is good).
pub fn https_status_via_loopback(host: &str, port: u16) -> std::result::Result<u16, String> {
    let out = crate::process::Cmd::new("curl")
        .args([
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        // As a browser navigating there would: the gate redirects those.
        .args(["-H", "Accept: text/html"])
        .arg("--resolve")
        .arg(format!("{host}:{port}:127.0.0.1"))
        .arg(format!("https://{host}:{port}/"))
        .timeout(std::time::Duration::from_secs(10))
        .output()
        .map_err(|e| e.to_string())?;
    let code = out.stdout_str();
    match code.trim().parse::<u16>() {
        Ok(c) if c > 0 => Ok(c),
        _ => Err(format!(
            "no answer ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_gateway() {
        let s = Subnet::parse("10.87.0.0/24").unwrap();
        assert_eq!(s.gateway().to_string(), "10.87.0.1/24");
        assert_eq!(
            Subnet::parse("10.87.0.1/24").unwrap().gateway().to_string(),
            "10.87.0.1/24"
        );
        for bad in [
            "10.87.0.1",
            "10.87.0.300/24",
            "10.87.0.1/4",
            "x/24",
            "10.0.0.1/31",
        ] {
            let e = Subnet::parse(bad).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn overlap() {
        let a = Subnet::parse("10.0.0.1/8").unwrap();
        let b = Subnet::parse("10.100.2.1/24").unwrap();
        let c = Subnet::parse("192.168.1.1/24").unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!b.overlaps(&c));
    }

    #[test]
    fn proc_route_is_read_in_host_byte_order() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
lxdbr0\t0000640A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let routes = parse_proc_route(text);
        let shown: Vec<String> = routes.iter().map(|(i, s)| format!("{i} {s}")).collect();
        assert_eq!(shown, ["eth0 192.0.2.0/24", "lxdbr0 10.100.0.0/24"]);
    }

    #[test]
    fn proc_sockets_listen_and_bound() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n\
   1: 0100007F:0016 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n";
        let got = parse_proc_sockets(tcp, false);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].addr.to_string(), got[0].port, got[0].inode),
            ("0.0.0.0".into(), 8080, 1)
        );
        let udp = "  sl  local_address rem_address   st tx rx tr retr uid timeout inode\n   0: 0100007F:14E9 00000000:0000 07 0 0 0 0 0 0 77\n";
        let got = parse_proc_sockets(udp, true);
        assert_eq!(
            (got[0].addr.to_string(), got[0].port),
            ("127.0.0.1".into(), 5353)
        );
        let tcp6 = "  sl  local_address remote_address st tx rx tr retr uid timeout inode\n   0: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 0 0 0 0 0 0 9\n   1: 0000000000000000FFFF00000200A8C0:1F90 00000000000000000000000000000000:0000 0A 0 0 0 0 0 0 10\n";
        let got: Vec<String> = parse_proc_sockets(tcp6, false)
            .iter()
            .map(|s| format!("{} {}", s.addr, s.port))
            .collect();
        assert_eq!(got, ["::1 22", "::ffff:192.168.0.2 8080"]);
    }

    #[test]
    fn default_route_names_its_interface() {
        let text = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n\
trmbr0\t0000640A\t00000000\t0001\t0\t0\t0\t00FFFFFF\n\
wan0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\n";
        assert_eq!(parse_default_route(text).as_deref(), Some("wan0"));
        assert_eq!(parse_default_route("Iface\tDestination\n"), None);
    }

    #[test]
    fn chooses_a_subnet_that_collides_with_nothing() {
        let taken = vec![
            Subnet::parse("10.100.0.0/24").unwrap(),
            Subnet::parse("10.100.1.0/23").unwrap(),
        ];
        assert_eq!(choose_free(&taken).unwrap().to_string(), "10.100.2.1/24");
        let everything = vec![Subnet::parse("10.0.0.0/8").unwrap()];
        assert!(choose_free(&everything).is_none());
    }
}
