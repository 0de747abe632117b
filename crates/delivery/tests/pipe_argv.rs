//! pipe(8) with a real command: argv= expansion, user= rights, flags (F R D O h u),
//! the reason texts, refusing root. Needs root.
#![allow(clippy::unwrap_used)]

#[path = "local_support.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;

use support::{MESSAGE, Setup, USER, test_user, tmp_dir};
use tern_delivery::pipe::{self, PipeError, PipeService};
use tern_delivery::request::{Agent, Delivered};
use tern_message::trace::Timestamp;

#[test]
fn argv_expansion_rights_and_flags() {
    let (uid, gid, _) = test_user();
    let tmp = tmp_dir(0o777);
    let out = tmp.path().join("pipe.out");
    let script = tmp.path().join("script.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do echo \"arg:$a\"; done > {o}\nid -u >> {o}\nid -g >> {o}\ncat >> {o}\necho done-output\n",
            o = out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let master = format!(
        "maildrop unix - n n - - pipe flags=DRhu user={USER} argv={} ${{sender}} ${{recipient}} ${{nexthop}} ${{user}} ${{extension}} ${{size}}\n\
         rootpipe unix - n n - - pipe user=root argv=/bin/true\n\
         badmacro unix - n n - - pipe user={USER} argv=/bin/echo ${{bogus}}\n",
        script.display()
    );
    let s = Setup::new("", "", &master);
    let svc = PipeService::from_service(&s.config, "maildrop").unwrap();
    assert_eq!((svc.uid, svc.gid), (uid, gid));
    let mut req = s.request("P1", "Snd@Example.org", &["User+Ext@Host.EXAMPLE"], MESSAGE);
    req.agent = Agent::Pipe;
    req.transport = "maildrop".into();
    req.nexthop = "Host.EXAMPLE".into();
    let now = Timestamp::utc(1_795_738_341);
    let res = pipe::deliver(&req, &svc, &[], &now);
    assert_eq!(
        res[0].result,
        Delivered::Sent {
            dsn: "2.0.0".into(),
            text: "delivered via maildrop service (done-output)".into()
        }
    );
    assert_eq!(res[0].relay, "maildrop");
    let text = std::fs::read_to_string(&out).unwrap();
    let size = MESSAGE.len();
    assert_eq!(
        text,
        format!(
            "arg:Snd@Example.org\narg:user+ext@host.example\narg:host.example\narg:user\n\
             arg:ext\narg:{size}\n{uid}\n{gid}\nReturn-Path: <Snd@Example.org>\n\
             Delivered-To: User+Ext@Host.EXAMPLE\n{MESSAGE}"
        )
    );
    // D: a Delivered-To: of this recipient is a loop.
    let looping = format!("Delivered-To: user+ext@host.example\n{MESSAGE}");
    let mut req = s.request("P2", "", &["User+Ext@Host.EXAMPLE"], &looping);
    req.transport = "maildrop".into();
    let res = pipe::deliver(&req, &svc, &[], &now);
    assert_eq!(
        res[0].result,
        Delivered::Bounced {
            dsn: "5.4.6".into(),
            text: "mail forwarding loop for User+Ext@Host.EXAMPLE".into()
        }
    );
    // D with two recipients needs maildrop_destination_recipient_limit = 1.
    let req = s.request("P3", "", &["a@host.example", "b@host.example"], MESSAGE);
    let res = pipe::deliver(&req, &svc, &[], &now);
    assert_eq!(
        res[1].result,
        Delivered::Deferred {
            dsn: "4.3.5".into(),
            text: "mail system configuration error".into()
        }
    );
    assert_eq!(
        PipeService::from_service(&s.config, "rootpipe"),
        Err(PipeError::Root)
    );
    assert!(matches!(
        PipeService::from_service(&s.config, "badmacro"),
        Err(PipeError::UnknownMacro { .. })
    ));
}
