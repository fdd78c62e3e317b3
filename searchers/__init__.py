"""Search strategies (AutoSegNet, RENAS, U-Net GA, NAS-ASDet, IAC), the shared search loop and executors."""
