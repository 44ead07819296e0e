"""`nrender view`: the interactive viewer (window.py), the state it shows (session.py),
its camera (camera_control.py) and debug views (debug_views.py).

The window needs the `viewer` extra (glfw, moderngl, imgui-bundle, PyOpenGL); the rest
runs anywhere, which is how the tests drive it.
"""

# What the viewer can show, in the order keys 1..7 pick them: the path-traced picture, then
# the debug views of shaders/viewer/debug_views.slang.
DISPLAY_VIEWS = ("beauty", "albedo", "normal", "frames", "latent", "level", "pdf")
