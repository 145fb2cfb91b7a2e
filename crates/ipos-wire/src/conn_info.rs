//! ipOS connection information (FIG. 11C, 11D): the body of a connection
//! packet, telling where a migrated endpoint now lives.
//!
//! ```text
//! UDP:  server IP (4) | server port (2)                          =   6 bytes
//! TCP:  server IP (4) | server port (2) | TCB information (140)  = 146 bytes
//! ```
//!
//! The TCB is opaque here ([`TCB_LEN`] bytes); its layout belongs to the TCP
//! endpoint's export/import code.

use crate::error::{Error, Result};
use crate::header::Protocol;
use smoltcp::wire::Ipv4Address;

mod field {
    use core::ops::Range;

    pub const SERVER_ADDR: Range<usize> = 0..4;
    pub const SERVER_PORT: Range<usize> = 4..6;
    pub const TCB: Range<usize> = 6..146;
}

/// Length of the TCP control block information.
pub const TCB_LEN: usize = 140;
/// Length of UDP connection information.
pub const UDP_CONN_INFO_LEN: usize = field::SERVER_PORT.end;
/// Length of TCP connection information.
pub const TCP_CONN_INFO_LEN: usize = field::TCB.end;

/// Connection information length for `protocol`, if it has one.
pub const fn conn_info_len(protocol: Protocol) -> Option<usize> {
    match protocol {
        Protocol::Tcp => Some(TCP_CONN_INFO_LEN),
        Protocol::Udp => Some(UDP_CONN_INFO_LEN),
        Protocol::Unknown(_) => None,
    }
}

/// A read/write view of connection information at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap a buffer holding at least the UDP form (6 bytes); after this the
    /// server address and port accessors cannot panic, and [`Packet::tcb`]
    /// never panics anyway.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Err(Truncated)` if shorter than [`UDP_CONN_INFO_LEN`].
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < UDP_CONN_INFO_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// `Err(Truncated)` if shorter than the form `protocol` needs,
    /// `Err(UnknownProtocol)` for a protocol without one.
    pub fn check_len_for(&self, protocol: Protocol) -> Result<()> {
        let need = match protocol {
            Protocol::Unknown(p) => return Err(Error::UnknownProtocol(p)),
            known => conn_info_len(known).unwrap_or(TCP_CONN_INFO_LEN),
        };
        if self.buffer.as_ref().len() < need {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Where the endpoint now lives: IP.
    pub fn server_addr(&self) -> Ipv4Address {
        let b = &self.buffer.as_ref()[field::SERVER_ADDR];
        Ipv4Address::new(b[0], b[1], b[2], b[3])
    }

    /// Where the endpoint now lives: port.
    pub fn server_port(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::SERVER_PORT];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The TCB information, or `None` if the buffer is too short for it.
    pub fn tcb(&self) -> Option<&[u8; TCB_LEN]> {
        self.buffer.as_ref().get(field::TCB)?.try_into().ok()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the server IP.
    pub fn set_server_addr(&mut self, value: Ipv4Address) {
        self.buffer.as_mut()[field::SERVER_ADDR].copy_from_slice(&value.octets());
    }

    /// Set the server port.
    pub fn set_server_port(&mut self, value: u16) {
        self.buffer.as_mut()[field::SERVER_PORT].copy_from_slice(&value.to_be_bytes());
    }

    /// The TCB information, mutable, or `None` if the buffer is too short.
    pub fn tcb_mut(&mut self) -> Option<&mut [u8; TCB_LEN]> {
        self.buffer.as_mut().get_mut(field::TCB)?.try_into().ok()
    }
}

/// Parsed connection information.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnInfoRepr<'a> {
    /// UDP form.
    Udp {
        /// Server IP.
        server_addr: Ipv4Address,
        /// Server port.
        server_port: u16,
    },
    /// TCP form.
    Tcp {
        /// Server IP.
        server_addr: Ipv4Address,
        /// Server port.
        server_port: u16,
        /// The TCB information, opaque here.
        tcb: &'a [u8; TCB_LEN],
    },
}

impl<'a> ConnInfoRepr<'a> {
    /// Parse the form `protocol` calls for. Bytes after it are ignored.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&'a T>,
        protocol: Protocol,
    ) -> Result<ConnInfoRepr<'a>> {
        packet.check_len_for(protocol)?;
        let server_addr = packet.server_addr();
        let server_port = packet.server_port();
        match protocol {
            Protocol::Udp => Ok(ConnInfoRepr::Udp {
                server_addr,
                server_port,
            }),
            _ => {
                let bytes: &'a [u8] = packet.buffer.as_ref();
                let tcb = bytes
                    .get(field::TCB)
                    .and_then(|t| <&[u8; TCB_LEN]>::try_from(t).ok())
                    .ok_or(Error::Truncated)?;
                Ok(ConnInfoRepr::Tcp {
                    server_addr,
                    server_port,
                    tcb,
                })
            }
        }
    }

    /// The ipOS protocol of this form.
    pub const fn protocol(&self) -> Protocol {
        match self {
            ConnInfoRepr::Udp { .. } => Protocol::Udp,
            ConnInfoRepr::Tcp { .. } => Protocol::Tcp,
        }
    }

    /// Bytes [`ConnInfoRepr::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        match self {
            ConnInfoRepr::Udp { .. } => UDP_CONN_INFO_LEN,
            ConnInfoRepr::Tcp { .. } => TCP_CONN_INFO_LEN,
        }
    }

    /// Write this connection information; `Err(BadLength)` if the buffer is
    /// shorter than [`ConnInfoRepr::buffer_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        if packet.buffer.as_ref().len() < self.buffer_len() {
            return Err(Error::BadLength);
        }
        match *self {
            ConnInfoRepr::Udp {
                server_addr,
                server_port,
            } => {
                packet.set_server_addr(server_addr);
                packet.set_server_port(server_port);
            }
            ConnInfoRepr::Tcp {
                server_addr,
                server_port,
                tcb,
            } => {
                packet.set_server_addr(server_addr);
                packet.set_server_port(server_port);
                packet
                    .tcb_mut()
                    .ok_or(Error::BadLength)?
                    .copy_from_slice(tcb);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static UDP_BYTES: [u8; 6] = [
        0xc6, 0x12, 0x00, 0x02, // server IP 198.18.0.2
        0x1f, 0x90, // server port 8080
    ];

    fn tcb() -> [u8; TCB_LEN] {
        core::array::from_fn(|i| i as u8)
    }

    fn tcp_bytes() -> Vec<u8> {
        let mut v = UDP_BYTES.to_vec();
        v.extend_from_slice(&tcb());
        v
    }

    #[test]
    fn deconstruct_udp() {
        let packet = Packet::new_checked(&UDP_BYTES[..]).unwrap();
        assert_eq!(packet.server_addr(), Ipv4Address::new(198, 18, 0, 2));
        assert_eq!(packet.server_port(), 8080);
        assert_eq!(packet.tcb(), None);
        assert_eq!(
            ConnInfoRepr::parse(&packet, Protocol::Udp),
            Ok(ConnInfoRepr::Udp {
                server_addr: Ipv4Address::new(198, 18, 0, 2),
                server_port: 8080
            })
        );
        assert_eq!(
            ConnInfoRepr::parse(&packet, Protocol::Tcp),
            Err(Error::Truncated)
        );
        assert_eq!(
            ConnInfoRepr::parse(&packet, Protocol::Unknown(9)),
            Err(Error::UnknownProtocol(9))
        );
    }

    #[test]
    fn deconstruct_tcp() {
        let bytes = tcp_bytes();
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        let t = tcb();
        assert_eq!(packet.tcb(), Some(&t));
        let repr = ConnInfoRepr::parse(&packet, Protocol::Tcp).unwrap();
        assert_eq!(
            repr,
            ConnInfoRepr::Tcp {
                server_addr: Ipv4Address::new(198, 18, 0, 2),
                server_port: 8080,
                tcb: &t
            }
        );
        assert_eq!(repr.protocol(), Protocol::Tcp);
        assert_eq!(repr.buffer_len(), 146);
    }

    #[test]
    fn construct() {
        let t = tcb();
        let repr = ConnInfoRepr::Tcp {
            server_addr: Ipv4Address::new(198, 18, 0, 2),
            server_port: 8080,
            tcb: &t,
        };
        let mut out = vec![0u8; 146];
        repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(out, tcp_bytes());
        let repr = ConnInfoRepr::Udp {
            server_addr: Ipv4Address::new(198, 18, 0, 2),
            server_port: 8080,
        };
        let mut out = [0u8; 6];
        repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(out, UDP_BYTES);
    }

    #[test]
    fn truncated_and_bad_length() {
        assert_eq!(
            Packet::new_checked(&UDP_BYTES[..5]).unwrap_err(),
            Error::Truncated
        );
        let bytes = tcp_bytes();
        let packet = Packet::new_unchecked(&bytes[..145]);
        assert_eq!(
            ConnInfoRepr::parse(&packet, Protocol::Tcp),
            Err(Error::Truncated)
        );
        let t = tcb();
        let repr = ConnInfoRepr::Tcp {
            server_addr: Ipv4Address::new(198, 18, 0, 2),
            server_port: 8080,
            tcb: &t,
        };
        let mut out = [0u8; 145];
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut out[..])),
            Err(Error::BadLength)
        );
    }
}
