import os

print(f"twostage uid={os.getuid()}")
