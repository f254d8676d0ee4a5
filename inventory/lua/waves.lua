-- A stock shard's waves, as load_sale.lua stores them ("<opens at, microseconds since the epoch>:
-- <units>,..." in order): the functions that admit.lua and shift_units.lua share (each includes
-- this file).
--
-- waves_ahead(waves, now) -> the units of the waves still to come at `now` (Redis TIME, in
--   microseconds), and when the next of them opens (0: none is to come).

local function waves_ahead(waves, now)
    local held_back, next_wave = 0, 0
    for opens, units in string.gmatch(waves or "", "(%d+):(%d+)") do
        if now < tonumber(opens) then
            held_back = held_back + tonumber(units)
            if next_wave == 0 then
                next_wave = tonumber(opens)
            end
        end
    end
    return held_back, next_wave
end
