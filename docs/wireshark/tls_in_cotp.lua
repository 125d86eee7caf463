-- A Wireshark/tshark heuristic dissector for TLS carried as COTP DT payload (secure S7
-- communication: TPKT and COTP in clear, TLS records inside the DTs). Wireshark 4.0 has no
-- "Decode As" for COTP payloads and no TLS heuristic there; its COTP dissector reassembles each
-- TSDU and offers it to the "cotp" heuristics, where this hands it to the TLS dissector. With a
-- key log (-o tls.keylog_file:FILE) the application data shows decrypted.
--
--   tshark -X lua_script:tls_in_cotp.lua -d tcp.port==PORT,tpkt -o tls.keylog_file:keys.log -r trace.pcap
--
-- (On port 102, no -d is needed.) The TLS dissector reassembles a record only within one TSDU:
-- a record a peer cuts over two TSDUs is not decrypted.

local tls = Dissector.get("tls")
local tls_in_cotp = Proto("tls_in_cotp", "TLS inside COTP")

local function heuristic(tvb, pinfo, tree)
    if tvb:len() < 5 then
        return false
    end
    -- A TLS record header: content type 20..23 (change_cipher_spec, alert, handshake,
    -- application_data) and a record version 0x0301..0x0303.
    local content_type, version = tvb(0, 1):uint(), tvb(1, 2):uint()
    if content_type < 20 or content_type > 23 or version < 0x0301 or version > 0x0303 then
        return false
    end
    tls:call(tvb, pinfo, tree)
    return true
end

tls_in_cotp:register_heuristic("cotp", heuristic)
