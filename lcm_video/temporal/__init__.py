"""What ties frames together over time: blending and window fusion of x0 estimates."""
