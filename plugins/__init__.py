"""The built-in plugins: registered through the same calls as any third-party plugin."""
