package term

import "golang.org/x/sys/unix"

func size(fd int) (Size, bool) {
	ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ)
	if err != nil {
		return Size{}, false
	}
	return Size{Width: int(ws.Col), Height: int(ws.Row)}, true
}
