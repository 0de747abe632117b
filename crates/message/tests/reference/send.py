import smtplib, ssl, sys, socket, base64, time
# case name, port, helo ('' = none, 'HELO x' or 'EHLO x'), tls, auth, sender, rcpts, data
H=lambda n: "".join("Received: from h%d.example by relay%d.example; Thu, 1 Jan 2026 00:00:00 +0000\r\n"%(i,i) for i in range(n))
long1 = "X-Long: " + "a"*120000 + "\r\n"
folded = "X-Folded: start\r\n" + "".join("\t%04d%s\r\n" % (i, "b"*995) for i in range(150))
cases = [
 ("c01-nohdr-local", 2725, "EHLO client.example.org", 0,0, "sender@example.org", ["alice@mx.example.test"], "hello world\r\nSubject: not a header\r\n\r\nbody\r\n"),
 ("c02-blankfirst", 2725, "EHLO client.example.org", 0,0, "sender@example.org", ["alice@mx.example.test"], "\r\nbody only\r\n"),
 ("c03-full", 2725, "EHLO client.example.org", 0,0, "sender@example.org", ["alice@mx.example.test"], "From: Sender <sender@example.org>\r\nTo: alice@mx.example.test\r\nDate: Thu, 1 Jan 2026 00:00:00 +0000\r\nMessage-ID: <abc@example.org>\r\nSubject: full\r\n\r\nbody\r\n"),
 ("c04-tworcpt", 2725, "EHLO client.example.org", 0,0, "sender@example.org", ["alice@mx.example.test","postmaster@mx.example.test"], "Subject: two\r\n\r\nbody\r\n"),
 ("c05-remote", 2726, "EHLO client.example.org", 0,0, "sender@example.org", ["alice@mx.example.test"], "Subject: remote\r\n\r\nbody\r\n"),
 ("c06-remote-rwdomain", 2727, "EHLO client.example.org", 0,0, "sender@example.org", ["alice@mx.example.test"], "Subject: rw\r\n\r\nbody\r\n"),
 ("c07-always-add", 2728, "EHLO client.example.org", 0,0, "sender@example.org", ["alice@mx.example.test"], "Subject: always\r\n\r\nbody\r\n"),
 ("c08-nohelo", 2725, "", 0,0, "sender@example.org", ["alice@mx.example.test"], "Subject: nohelo\r\n\r\nbody\r\n"),
 ("c09-helo", 2725, "HELO client.example.org", 0,0, "sender@example.org", ["alice@mx.example.test"], "Subject: helo\r\n\r\nbody\r\n"),
 ("c10-esmtps", 2729, "EHLO client.example.org", 1,0, "sender@example.org", ["alice@mx.example.test"], "Subject: tls\r\n\r\nbody\r\n"),
 ("c11-esmtpa", 2729, "EHLO client.example.org", 0,1, "sender@example.org", ["alice@mx.example.test"], "Subject: auth\r\n\r\nbody\r\n"),
 ("c12-esmtpsa", 2729, "EHLO client.example.org", 1,1, "sender@example.org", ["alice@mx.example.test"], "Subject: tlsauth\r\n\r\nbody\r\n"),
 ("c13-nullsender", 2725, "EHLO client.example.org", 0,0, "", ["alice@mx.example.test"], "Subject: null\r\n\r\nbody\r\n"),
 ("c14-quoted", 2725, "EHLO client.example.org", 0,0, '"john smith"@example.org', ['"john smith"@mx.example.test'], "Subject: quoted\r\n\r\nbody\r\n"),
 ("c15-hops48", 2725, "EHLO client.example.org", 0,0, "sender@example.org", ["alice@mx.example.test"], H(48)+"Subject: hops48\r\n\r\nbody\r\n"),
 ("c16-hops49", 2725, "EHLO client.example.org", 0,0, "sender@example.org", ["alice@mx.example.test"], H(49)+"Subject: hops49\r\n\r\nbody\r\n"),
 ("c17-longline", 2725, "EHLO client.example.org", 0,0, "sender@example.org", ["alice@mx.example.test"], "Subject: long\r\n"+long1+"X-After: yes\r\n\r\nbody\r\n"),
 ("c18-folded", 2725, "EHLO client.example.org", 0,0, "sender@example.org", ["alice@mx.example.test"], "Subject: folded\r\n"+folded+"X-After: yes\r\n\r\nbody\r\n"),
 ("c19-spacecolon", 2725, "EHLO client.example.org", 0,0, "sender@example.org", ["alice@mx.example.test"], "Subject : spaced\r\nX-NoSpace:tight\r\nX-Tab:\tvalue\r\nmessage-id:   <lower@example.org>\r\n\r\nbody\r\n"),
 ("c20-nosep", 2725, "EHLO client.example.org", 0,0, "sender@example.org", ["alice@mx.example.test"], "Subject: nosep\r\nX-Last: yes\r\n"),
 ("c21-wsfirst", 2725, "EHLO client.example.org", 0,0, "sender@example.org", ["alice@mx.example.test"], " leading space\r\nSubject: x\r\n\r\nbody\r\n"),
 ("c22-fromline", 2725, "EHLO client.example.org", 0,0, "sender@example.org", ["alice@mx.example.test"], "From someone Thu Jan  1 00:00:00 2026\r\nSubject: mbox\r\n\r\nbody\r\n"),
 ("c23-emptyto", 2725, "EHLO client.example.org", 0,0, "sender@example.org", ["alice@mx.example.test"], "To:\r\nSubject: emptyto\r\n\r\nbody\r\n"),
 ("c24-nohdr-remote", 2726, "EHLO client.example.org", 0,0, "sender@example.org", ["alice@mx.example.test"], "hello remote\r\n"),
 ("c25-unknownname", 2725, "EHLO [127.0.0.1]", 0,0, "sender@example.org", ["alice@mx.example.test"], "Subject: literal helo\r\n\r\nbody\r\n"),
 ("c26-small-nicecut", 2730, "EHLO client.example.org", 0,0, "sender@example.org", ["alice@mx.example.test"], "Subject: nice\r\nX-Folded: start\r\n" + "".join("\t%02d%s\r\n" % (i, "n"*97) for i in range(15)) + "X-After: yes\r\n\r\nbody\r\n"),
 ("c27-small-unkind", 2730, "EHLO client.example.org", 0,0, "sender@example.org", ["alice@mx.example.test"], "Subject: unkind\r\nX-U: " + "u"*850 + "\r\n\t" + "v"*299 + "\r\n\tw\r\nX-After: yes\r\n\r\nbody\r\n"),
 ("c28-small-oneline", 2730, "EHLO client.example.org", 0,0, "sender@example.org", ["alice@mx.example.test"], "Subject: oneline\r\nX-One: " + "o"*1500 + "\r\nX-After: yes\r\n\r\nbody\r\n"),
 ("c29-small-hops2", 2730, "EHLO client.example.org", 0,0, "sender@example.org", ["alice@mx.example.test"], H(2)+"Subject: hops2\r\n\r\nbody\r\n"),
 ("c29-small-hops1", 2730, "EHLO client.example.org", 0,0, "sender@example.org", ["alice@mx.example.test"], H(1)+"Subject: hops1\r\n\r\nbody\r\n"),
 ("c30-undisclosed", 2731, "EHLO client.example.org", 0,0, "sender@example.org", ["alice@mx.example.test"], "Subject: undisclosed\r\n\r\nbody\r\n"),
 ("c31-cconly", 2731, "EHLO client.example.org", 0,0, "sender@example.org", ["alice@mx.example.test"], "Cc: someone@example.org\r\nSubject: cc only\r\n\r\nbody\r\n"),
 ("c32-spacecolon-hdr", 2725, "EHLO client.example.org", 0,0, "sender@example.org", ["alice@mx.example.test"], "From : Spaced <s@example.org>\r\nX-Bad Name: x\r\nSubject: after bad\r\n\r\nbody\r\n"),
 ("c33-smtputf8", 2725, "EHLO client.example.org", 0,0, "sender@example.org SMTPUTF8", ["alice@mx.example.test"], "Subject: utf8\r\n\r\nbody\r\n"),
]
only = sys.argv[1:] 
for (name, port, helo, tls, auth, sender, rcpts, data) in cases:
    if only and name not in only: continue
    s = smtplib.SMTP(timeout=20)
    s.connect("127.0.0.1", port)
    if helo:
        verb, arg = helo.split(" ",1)
        s.docmd(verb, arg)
        if tls:
            print(s.docmd("STARTTLS"))
            ctx = ssl.create_default_context(); ctx.check_hostname=False; ctx.verify_mode=ssl.CERT_NONE
            s.sock = ctx.wrap_socket(s.sock, server_hostname="mx.example.test"); s.file=None
            s.docmd(verb, arg)
        if auth:
            print(s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0carol@mx.example.test\0secret").decode()))
    print(name, s.docmd("MAIL", "FROM:<%s>" % sender if " " not in sender else "FROM:<%s> %s" % tuple(sender.split(" ",1))))
    for r in rcpts: print(s.docmd("RCPT", "TO:<%s>" % r))
    print(s.docmd("DATA"))
    s.send((data + ".\r\n").encode())
    print(name, s.getreply())
    s.docmd("QUIT"); s.close()
    time.sleep(0.3)
