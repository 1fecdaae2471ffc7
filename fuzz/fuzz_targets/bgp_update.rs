//! One UPDATE body under a context chosen by the first octet.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    control::bgp::wire::selfcheck::update_body(data);
});
