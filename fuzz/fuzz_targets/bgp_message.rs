//! A TCP byte stream of BGP messages: framing, every message type, UPDATEs
//! with RFC 7606 handling, and round trips (`control::bgp::wire::selfcheck`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    control::bgp::wire::selfcheck::message_stream(data);
});
