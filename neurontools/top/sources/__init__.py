"""Where neuron-top's frames come from: neurond (live), a neuron-monitor stream, a recording.

Every source is read by one worker thread at a time: `read()` blocks until the next frame, and
`delay()` says how long the app waits after a read before arming the next one (never a fixed
timer, so slow reads cannot pile up).
"""
