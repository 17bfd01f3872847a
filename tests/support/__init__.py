"""What every service's tests share: waiting for conditions, expecting errors, timestamps, fuzz
calls from hypothesis' thread, and serving checks of server processes."""
