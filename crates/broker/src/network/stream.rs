//! A connection's two halves, over plain TCP or TLS.
//!
//! Plain TCP keeps tokio's owned halves (no lock between reader and writer, and the reader can
//! wait for readability holding no buffer); TLS splits one rustls stream with
//! `tokio::io::split`, whose halves share the session behind a lock, as TLS must.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// The read side of a connection.
pub enum ReadSide {
    Tcp(OwnedReadHalf),
    Tls(ReadHalf<TlsStream<TcpStream>>),
}

/// The write side of a connection.
pub enum WriteSide {
    Tcp(OwnedWriteHalf),
    Tls(WriteHalf<TlsStream<TcpStream>>),
}

/// Splits a plain TCP connection.
pub fn split_tcp(socket: TcpStream) -> (ReadSide, WriteSide) {
    let (read, write) = socket.into_split();
    (ReadSide::Tcp(read), WriteSide::Tcp(write))
}

/// Splits a TLS connection whose handshake is done.
pub fn split_tls(stream: TlsStream<TcpStream>) -> (ReadSide, WriteSide) {
    let (read, write) = tokio::io::split(stream);
    (ReadSide::Tls(read), WriteSide::Tls(write))
}

impl ReadSide {
    /// Reads what is available into `buffer`; 0 at end of stream. Over TCP it waits for
    /// readability first, so `release_while_idle` can let an empty buffer go before waiting.
    pub async fn fill(
        &mut self,
        buffer: &mut BytesMut,
        make_room: impl Fn(&mut BytesMut),
        release_while_idle: impl Fn(&mut BytesMut),
    ) -> io::Result<usize> {
        use tokio::io::AsyncReadExt;
        match self {
            ReadSide::Tcp(socket) => loop {
                make_room(buffer);
                match socket.try_read_buf(buffer) {
                    Ok(read) => return Ok(read),
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                        release_while_idle(buffer);
                        socket.readable().await?;
                    }
                    Err(error) => return Err(error),
                }
            },
            // rustls decrypts whole records into its own buffer; the read buffer is ours.
            ReadSide::Tls(stream) => {
                make_room(buffer);
                stream.read_buf(buffer).await
            }
        }
    }
}

impl AsyncRead for ReadSide {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadSide::Tcp(socket) => Pin::new(socket).poll_read(context, buffer),
            ReadSide::Tls(stream) => Pin::new(stream).poll_read(context, buffer),
        }
    }
}

impl AsyncWrite for WriteSide {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteSide::Tcp(socket) => Pin::new(socket).poll_write(context, bytes),
            WriteSide::Tls(stream) => Pin::new(stream).poll_write(context, bytes),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteSide::Tcp(socket) => Pin::new(socket).poll_write_vectored(context, slices),
            WriteSide::Tls(stream) => Pin::new(stream).poll_write_vectored(context, slices),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            WriteSide::Tcp(socket) => socket.is_write_vectored(),
            WriteSide::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteSide::Tcp(socket) => Pin::new(socket).poll_flush(context),
            WriteSide::Tls(stream) => Pin::new(stream).poll_flush(context),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteSide::Tcp(socket) => Pin::new(socket).poll_shutdown(context),
            WriteSide::Tls(stream) => Pin::new(stream).poll_shutdown(context),
        }
    }
}
